//! A schema-driven fuzz of the whole API, the way schema fuzzers drive it from outside: the
//! schema is read by introspection, and every query and mutation is sent with plausible
//! arguments and then with each argument (and each field of each input object) replaced by
//! edge values — empty, huge, negative, malformed, of the wrong type, null, unknown enum
//! values, long lists. Every answer must be a GraphQL answer with documented error codes:
//! no `INTERNAL`, no HTTP 500, nothing of SQL, Rust or file paths in a message, and the server
//! still serves the data it had.

use std::{
    collections::{BTreeMap, HashMap},
    sync::atomic::{AtomicUsize, Ordering},
};

use entity::VideoStatus;
use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{Backend, Session, TestApp, insert_video},
};

const INTROSPECTION: &str = r#"query {
  __schema {
    queryType { name }
    mutationType { name }
    types {
      kind name isOneOf
      fields { name args { name type { ...T } } type { ...T } }
      inputFields { name type { ...T } }
      enumValues { name }
    }
  }
}
fragment T on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
}"#;

/// Codes API.md allows, except `INTERNAL`: no input may cause an internal error.
const CODES: [&str; 8] = [
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "CONFLICT",
    "QUOTA_EXCEEDED",
    "RATE_LIMITED",
    "QUERY_TOO_COMPLEX",
];

/// Text that would mean an internal detail reached the client.
const LEAKS: [&str; 16] = [
    "sqlx",
    "sea_orm",
    "SeaORM",
    "SQLSTATE",
    "syntax error at",
    "panicked",
    ".rs:",
    "/src/",
    "constraint",
    "duplicate key",
    "violates",
    "no such table",
    "database is locked",
    "error returned from database",
    "os error",
    "/tmp/",
];

#[derive(Clone, Debug)]
enum Ty {
    Named(String),
    List(Box<Ty>),
    NonNull(Box<Ty>),
}

impl Ty {
    fn of(value: &Value) -> Self {
        match value["kind"].as_str() {
            Some("NON_NULL") => Ty::NonNull(Box::new(Ty::of(&value["ofType"]))),
            Some("LIST") => Ty::List(Box::new(Ty::of(&value["ofType"]))),
            _ => Ty::Named(value["name"].as_str().expect("named type").to_owned()),
        }
    }

    fn name(&self) -> &str {
        match self {
            Ty::Named(name) => name,
            Ty::List(inner) | Ty::NonNull(inner) => inner.name(),
        }
    }

    fn required(&self) -> bool {
        matches!(self, Ty::NonNull(_))
    }

    /// As written in a variable definition.
    fn render(&self) -> String {
        match self {
            Ty::Named(name) => name.clone(),
            Ty::List(inner) => format!("[{}]", inner.render()),
            Ty::NonNull(inner) => format!("{}!", inner.render()),
        }
    }
}

struct Field {
    name: String,
    args: Vec<(String, Ty)>,
    ty: Ty,
}

struct TypeDef {
    kind: String,
    one_of: bool,
    fields: Vec<Field>,
    input_fields: Vec<(String, Ty)>,
    enum_values: Vec<String>,
}

/// The schema's types as introspection describes them, read once.
struct Types(HashMap<String, TypeDef>);

/// The schema, and the ids of rows the fuzz may aim at.
struct Fuzzer<'a> {
    types: &'a Types,
    video: String,
    known: Known,
    missing: String,
}

/// Rows that exist, for the arguments that name them.
#[derive(Clone)]
struct Known {
    creator: String,
    user: String,
    highlight: String,
    job: String,
}

/// Numbers the e-mail addresses of plausible calls, so each `register` is new.
static EMAILS: AtomicUsize = AtomicUsize::new(0);

impl Types {
    fn read(introspection: &Value) -> Self {
        let mut types = HashMap::new();
        for ty in introspection["__schema"]["types"]
            .as_array()
            .expect("types")
        {
            let fields = ty["fields"]
                .as_array()
                .map(|fields| {
                    fields
                        .iter()
                        .map(|field| Field {
                            name: field["name"].as_str().expect("name").to_owned(),
                            args: field["args"]
                                .as_array()
                                .expect("args")
                                .iter()
                                .map(|arg| {
                                    (
                                        arg["name"].as_str().expect("name").to_owned(),
                                        Ty::of(&arg["type"]),
                                    )
                                })
                                .collect(),
                            ty: Ty::of(&field["type"]),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let input_fields = ty["inputFields"]
                .as_array()
                .map(|fields| {
                    fields
                        .iter()
                        .map(|field| {
                            (
                                field["name"].as_str().expect("name").to_owned(),
                                Ty::of(&field["type"]),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let enum_values = ty["enumValues"]
                .as_array()
                .map(|values| {
                    values
                        .iter()
                        .map(|v| v["name"].as_str().expect("name").to_owned())
                        .collect()
                })
                .unwrap_or_default();
            types.insert(
                ty["name"].as_str().expect("type name").to_owned(),
                TypeDef {
                    kind: ty["kind"].as_str().expect("kind").to_owned(),
                    one_of: ty["isOneOf"].as_bool().unwrap_or(false),
                    fields,
                    input_fields,
                    enum_values,
                },
            );
        }
        Self(types)
    }

    fn def(&self, name: &str) -> &TypeDef {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("type {name} in the introspection"))
    }
}

impl<'a> Fuzzer<'a> {
    fn new(types: &'a Types, video: String, known: Known) -> Self {
        Self {
            types,
            video,
            known,
            missing: uuid::Uuid::now_v7().to_string(),
        }
    }

    fn def(&self, name: &str) -> &'a TypeDef {
        self.types.def(name)
    }

    /// An id of the right kind for an argument or input field, judged by its name and the
    /// root field's.
    fn id_for(&self, name: &str, root: &str) -> String {
        let name = name.to_lowercase();
        let subject = if name == "id" {
            root.to_lowercase()
        } else {
            name
        };
        if subject.contains("highlight") || subject.contains("short") {
            self.known.highlight.clone()
        } else if subject.contains("video") {
            self.video.clone()
        } else if subject.contains("creator") {
            self.known.creator.clone()
        } else if subject.contains("user") {
            self.known.user.clone()
        } else if subject.contains("job") {
            self.known.job.clone()
        } else {
            self.missing.clone()
        }
    }

    /// A plausible value: what a well-behaved client would send, valid where the name tells
    /// what is expected, so that each edge value is checked past the other arguments.
    fn plausible(&self, ty: &Ty, name: &str, root: &str) -> Value {
        match ty {
            Ty::NonNull(inner) => self.plausible(inner, name, root),
            Ty::List(inner) => json!([self.plausible(inner, name, root)]),
            Ty::Named(type_name) => {
                let lower = name.to_lowercase();
                match type_name.as_str() {
                    "ID" => json!(self.id_for(name, root)),
                    "String" if lower.contains("email") => json!(format!(
                        "fuzz{}@example.com",
                        EMAILS.fetch_add(1, Ordering::Relaxed)
                    )),
                    "String" if lower.contains("password") => json!("correct horse battery"),
                    "String" if lower.contains("url") => json!("https://example.com/a.png"),
                    "String" if lower.contains("color") => json!("#336699"),
                    "String" if lower == "contenttype" && root.contains("Asset") => {
                        json!("image/png")
                    }
                    "String" if lower == "contenttype" => json!("video/mp4"),
                    "String" if lower == "filename" => json!("fuzz.mp4"),
                    "String" if lower == "sha256" => json!("ab".repeat(32)),
                    "String" => json!("fuzz"),
                    "Int" if lower == "width" => json!(320),
                    "Int" if lower == "height" => json!(180),
                    "Int" if lower == "fps" => json!(30),
                    "Int" if lower == "fontsize" => json!(24),
                    "Int" if lower == "sizebytes" => json!(1_000),
                    "Int" => json!(1),
                    "Float" if lower.contains("end") => json!(2.0),
                    "Boolean" => json!(true),
                    "DateTime" => json!("2026-01-01T00:00:00Z"),
                    "JSON" | "JSONObject" => json!({}),
                    other => {
                        let def = self.def(other);
                        match def.kind.as_str() {
                            "ENUM" => json!(def.enum_values[0]),
                            // A oneOf input takes exactly one field: the first.
                            "INPUT_OBJECT" if def.one_of => {
                                let (field, ty) = &def.input_fields[0];
                                json!({ field.as_str(): self.plausible(ty, field, root) })
                            }
                            "INPUT_OBJECT" => Value::Object(
                                def.input_fields
                                    .iter()
                                    .filter(|(_, ty)| ty.required())
                                    .map(|(field, ty)| {
                                        (field.clone(), self.plausible(ty, field, root))
                                    })
                                    .collect(),
                            ),
                            _ => json!("fuzz"),
                        }
                    }
                }
            }
        }
    }

    /// Edge values for a value of this type, each to be sent in place of a plausible one.
    fn edges(&self, ty: &Ty, name: &str, root: &str) -> Vec<Value> {
        let mut values = vec![Value::Null, json!({ "wrong": ["type"] })];
        match ty {
            Ty::NonNull(inner) => {
                let mut inner = self.edges(inner, name, root);
                inner.retain(|v| !v.is_null());
                values.extend(inner);
            }
            Ty::List(inner) => {
                let one = self.plausible(inner, name, root);
                values.push(json!([]));
                values.push(json!([null]));
                values.push(Value::Array(vec![one; 300]));
                values.extend(
                    self.edges(inner, name, root)
                        .into_iter()
                        .map(|v| json!([v])),
                );
            }
            Ty::Named(type_name) => match type_name.as_str() {
                "ID" => values.extend(
                    [
                        String::new(),
                        "not-a-uuid".to_owned(),
                        "00000000-0000-0000-0000-000000000000".to_owned(),
                        self.missing.clone(),
                        self.video.clone(),
                        self.known.creator.clone(),
                        self.known.user.clone(),
                        self.known.highlight.clone(),
                        self.known.job.clone(),
                        self.video.to_uppercase(),
                        format!(" {}", self.video),
                        "x".repeat(5_000),
                    ]
                    .map(Value::String),
                ),
                "String" => values.extend(
                    [
                        String::new(),
                        " ".to_owned(),
                        "a".repeat(20_000),
                        "nul \u{0} byte".to_owned(),
                        "😀 \u{202e} ünïcödé".to_owned(),
                        "' OR 1=1; DROP TABLE users; --".to_owned(),
                        "../../../../etc/passwd".to_owned(),
                        "%s%n%x {} $1 \\".to_owned(),
                        "eyJpZCI6ImJhZCJ9".to_owned(),
                        "-1".to_owned(),
                    ]
                    .map(Value::String),
                ),
                "Int" => values.extend(
                    [0i64, -1, 101, 1_000_000, 2_147_483_647, -2_147_483_648]
                        .map(|n| json!(n))
                        .into_iter()
                        .chain([json!(4_294_967_296i64), json!(1.5), json!("1")]),
                ),
                "Float" => values.extend(
                    [0.0, -1.0, 0.5, 1e-320, 1e308, -1e308, 3.2e7, 1e12]
                        .map(|n| json!(n))
                        .into_iter()
                        .chain([json!("1.0")]),
                ),
                "Boolean" => values.extend([json!(false), json!("true"), json!(0)]),
                "DateTime" => values.extend(
                    [
                        "",
                        "garbage",
                        "0001-01-01T00:00:00Z",
                        "9999-12-31T23:59:59Z",
                        "2026-02-30T00:00:00Z",
                        "2026-01-01",
                    ]
                    .map(|s| json!(s)),
                ),
                "JSON" | "JSONObject" => {
                    let mut deep = json!(1);
                    for _ in 0..60 {
                        deep = json!({ "a": [deep] });
                    }
                    values.extend([
                        json!([]),
                        json!("text"),
                        json!(1e308),
                        deep,
                        json!({ "scenes": "not a list", "width": -1 }),
                    ]);
                }
                other => {
                    let def = self.def(other);
                    match def.kind.as_str() {
                        "ENUM" => {
                            values.extend(def.enum_values.iter().map(|v| json!(v)));
                            values.push(json!("NOT_A_VALUE"));
                        }
                        "INPUT_OBJECT" => {
                            let plausible = self.plausible(ty, name, root);
                            values.push(json!({}));
                            let mut unknown = plausible.clone();
                            unknown["noSuchField"] = json!(1);
                            values.push(unknown);
                            for (field, field_ty) in &def.input_fields {
                                for edge in self.edges(field_ty, field, root) {
                                    // A oneOf input holds the edge alone; others keep the rest.
                                    let mut object = match def.one_of {
                                        true => json!({}),
                                        false => plausible.clone(),
                                    };
                                    object[field.as_str()] = edge;
                                    values.push(object);
                                }
                            }
                            if def.one_of {
                                values.push(Value::Object(
                                    def.input_fields
                                        .iter()
                                        .map(|(f, t)| (f.clone(), self.plausible(t, f, root)))
                                        .collect(),
                                ));
                            }
                        }
                        _ => values.push(json!("fuzz")),
                    }
                }
            },
        }
        values
    }

    /// Every field of the type without required arguments, objects `depth` levels down.
    fn selection(&self, ty: &Ty, depth: usize) -> String {
        let def = self.def(ty.name());
        match def.kind.as_str() {
            "OBJECT" => {
                let mut parts = vec!["__typename".to_owned()];
                for field in &def.fields {
                    if field.args.iter().any(|(_, ty)| ty.required()) {
                        continue;
                    }
                    match self.def(field.ty.name()).kind.as_str() {
                        "SCALAR" | "ENUM" => parts.push(field.name.clone()),
                        "OBJECT" if depth > 0 => parts.push(format!(
                            "{} {}",
                            field.name,
                            self.selection(&field.ty, depth - 1)
                        )),
                        _ => {}
                    }
                }
                format!("{{ {} }}", parts.join(" "))
            }
            "INTERFACE" | "UNION" => "{ __typename }".to_owned(),
            _ => String::new(),
        }
    }

    /// One operation calling `field` of the root type with these argument values, sent as
    /// variables.
    fn operation(&self, keyword: &str, field: &Field, args: &BTreeMap<String, Value>) -> Value {
        let mut definitions = Vec::new();
        let mut arguments = Vec::new();
        for (i, (name, ty)) in field.args.iter().enumerate() {
            if args.contains_key(name) {
                definitions.push(format!("$a{i}: {}", ty.render()));
                arguments.push(format!("{name}: $a{i}"));
            }
        }
        let variables: serde_json::Map<String, Value> = field
            .args
            .iter()
            .enumerate()
            .filter_map(|(i, (name, _))| args.get(name).map(|v| (format!("a{i}"), v.clone())))
            .collect();
        let definitions = if definitions.is_empty() {
            String::new()
        } else {
            format!("({})", definitions.join(", "))
        };
        let arguments = if arguments.is_empty() {
            String::new()
        } else {
            format!("({})", arguments.join(", "))
        };
        json!({
            "query": format!(
                "{keyword} Fuzz{definitions} {{ {}{arguments} {} }}",
                field.name,
                self.selection(&field.ty, 2)
            ),
            "variables": variables,
        })
    }

    /// The plausible call, then one call per edge value of each argument.
    fn cases(&self, keyword: &str, field: &Field) -> Vec<Value> {
        let plausible: BTreeMap<String, Value> = field
            .args
            .iter()
            .filter(|(_, ty)| ty.required())
            .map(|(name, ty)| (name.clone(), self.plausible(ty, name, &field.name)))
            .collect();
        let mut cases = vec![self.operation(keyword, field, &plausible)];
        for (name, ty) in &field.args {
            for edge in self.edges(ty, name, &field.name) {
                let mut args = plausible.clone();
                args.insert(name.clone(), edge);
                cases.push(self.operation(keyword, field, &args));
            }
        }
        cases
    }
}

/// Sends one case and checks the answer; returns the error codes it carried.
async fn send(app: &TestApp, token: Option<&str>, case: &Value) -> Vec<String> {
    let mut request = app.client.post(format!("{}/graphql", app.base)).json(case);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(
        status == 200 || status == 429,
        "HTTP {status} for {case}: {text}"
    );
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}) for {case}: {text}"));
    assert!(
        body.get("data").is_some() || body.get("errors").is_some(),
        "neither data nor errors for {case}: {body}"
    );
    let mut codes = Vec::new();
    for error in body["errors"].as_array().into_iter().flatten() {
        let code = error["extensions"]["code"].as_str().unwrap_or("<none>");
        assert!(CODES.contains(&code), "code {code} for {case}: {body}");
        let message = error["message"].as_str().expect("message");
        for leak in LEAKS {
            assert!(
                !message.contains(leak),
                "message leaks {leak:?} for {case}: {message}"
            );
        }
        codes.push(code.to_owned());
    }
    codes
}

async fn every_root_field_answers_edge_inputs_with_documented_errors(backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.no_worker = true).await;
    let admin = app.admin("fuzz-admin@example.com").await;
    let viewer = app.register("fuzz-viewer@example.com").await;
    let creator = app.create_creator(&admin, "Fuzz Creator").await;
    let video = insert_video(&app, &creator, "Fuzz video", VideoStatus::Ready, Some(30.0)).await;

    let token = Some(admin.access_token.as_str());
    app.ok(
        token,
        "mutation($v: ID!) { addKeyMoments(videoId: $v, moments: [{ title: \"Fuzz\", startTime: 1, endTime: 9 }]) { id } }",
        json!({ "v": video.to_string() }),
    )
    .await;
    let data = app
        .ok(
            token,
            "mutation($v: ID!) { detectHighlights(videoId: $v) { id } }",
            json!({ "v": video.to_string() }),
        )
        .await;
    let highlight = data["detectHighlights"][0]["id"]
        .as_str()
        .expect("highlight");
    let data = app
        .ok(
            token,
            "mutation { runDiagnosticJob(input: {}) { id } }",
            json!({}),
        )
        .await;
    let known = Known {
        creator: creator.clone(),
        user: admin.user_id.clone(),
        highlight: highlight.to_owned(),
        job: data["runDiagnosticJob"]["id"]
            .as_str()
            .expect("job")
            .to_owned(),
    };
    let introspection = app.ok(None, INTROSPECTION, json!({})).await;
    let types = Types::read(&introspection);

    let mut sent = 0usize;
    let mut tallies: BTreeMap<String, usize> = BTreeMap::new();
    for (root, keyword) in [("queryType", "query"), ("mutationType", "mutation")] {
        let root_name = introspection["__schema"][root]["name"]
            .as_str()
            .expect("root type");
        for field in &types.def(root_name).fields {
            // Signing out, or changing the password (its plausible call has the right one),
            // would end the sessions the rest of the fuzz runs as; auth.rs tests their inputs.
            if matches!(
                field.name.as_str(),
                "logout" | "logoutEverywhere" | "changePassword"
            ) {
                continue;
            }
            // Each field works on a video of its own, so what one field's cases add (thousands
            // of key moments) does not make every later field's answers huge.
            let own = insert_video(&app, &creator, "Fuzz", VideoStatus::Ready, Some(30.0)).await;
            let fuzzer = Fuzzer::new(&types, own.to_string(), known.clone());
            let cases = fuzzer.cases(keyword, field);
            // The plausible call as each kind of caller, then every edge case as the
            // administrator, who gets past every permission check to the input checks.
            for session in [None, Some(&viewer)] {
                let token = session.map(|s: &Session| s.access_token.as_str());
                for code in send(&app, token, &cases[0]).await {
                    *tallies.entry(code).or_default() += 1;
                }
                sent += 1;
            }
            for case in &cases {
                let codes = send(&app, Some(&admin.access_token), case).await;
                if codes.is_empty() {
                    *tallies.entry("no error".to_owned()).or_default() += 1;
                }
                for code in codes {
                    *tallies.entry(code).or_default() += 1;
                }
                sent += 1;
            }
        }
    }
    println!("{sent} requests; error codes: {tallies:?}");
    // The fuzz reached the input checks, not only the gates in front of them.
    assert!(sent > 1_000, "only {sent} requests");
    assert!(tallies.get("BAD_USER_INPUT").is_some_and(|n| *n > 300));

    // Nothing it sent broke the server or lost what was there.
    let data = app
        .ok(
            Some(&admin.access_token),
            "query($id: ID!) { video(id: $id) { title creator { id } } }",
            json!({ "id": video.to_string() }),
        )
        .await;
    assert_eq!(data["video"]["title"], "Fuzz video");
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
}

both_backends!(every_root_field_answers_edge_inputs_with_documented_errors);

/// Bodies that are not GraphQL requests at all get a GraphQL error with a code, not the
/// extractor's debug text or a bare status.
#[tokio::test]
async fn bodies_that_are_not_graphql_requests_get_coded_errors() {
    let app = TestApp::spawn_with(Backend::Sqlite, |args| args.no_worker = true).await;
    let deep = format!(
        "{{\"query\": \"{{ me {{ id }} }}\", \"variables\": {{\"a\": {}{}}}}}",
        "[".repeat(300),
        "]".repeat(300)
    );
    let cases: [(&str, String, u16); 7] = [
        ("truncated JSON", "{\"query\": ".to_owned(), 400),
        ("empty body", String::new(), 400),
        ("a list of numbers", "[1, 2]".to_owned(), 400),
        ("a query that is a number", "{\"query\": 5}".to_owned(), 400),
        ("null", "null".to_owned(), 400),
        ("nesting past the JSON parser's limit", deep, 400),
        ("over the body limit", "a".repeat((1 << 20) + 1), 413),
    ];
    for (what, body, status) in cases {
        let response = app
            .client
            .post(format!("{}/graphql", app.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), status, "{what}");
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: not a JSON body ({e})"));
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{what}: {body}"
        );
        let message = body["errors"][0]["message"].as_str().expect("message");
        assert!(
            !message.contains("InvalidRequest") && !message.contains("untagged enum"),
            "{what}: {message}"
        );
    }
}
