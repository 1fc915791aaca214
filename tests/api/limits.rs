use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

use crate::{
    both_backends,
    helpers::{Backend, TestApp, error_code, error_field},
};

async fn deep_and_expensive_queries_are_rejected_before_running(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut deep = String::from("id");
    for _ in 0..8 {
        deep = format!("videos {{ nodes {{ creator {{ {deep} }} }} }}");
    }
    let body = app
        .gql(
            None,
            &format!("{{ creators {{ nodes {{ {deep} }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    // With the figures, so a client sees how far over it is.
    assert_eq!(
        body["errors"][0]["message"],
        "Query is nested too deep: it reads fields 27 levels deep, and this server's limit is 12.",
        "{body}"
    );
    // Only the operation to run is held to the depth limit: GraphiQL sends every operation in
    // its editor, with the name of the one to run.
    // (18 levels: over this server's limit of 12 on data, within async-graphql's 24 on the
    // whole document, which it holds every operation to.)
    let mut narrow = String::from("id");
    for _ in 0..5 {
        narrow = format!("videos(first: 1) {{ nodes {{ creator {{ {narrow} }} }} }}");
    }
    let both = format!(
        "query Shallow {{ me {{ id }} }} query Deep {{ creators(first: 1) {{ nodes {{ {narrow} }} }} }}"
    );
    for (operation, refused) in [("Shallow", false), ("Deep", true)] {
        let body: serde_json::Value = app
            .post_body(None, &json!({ "query": both, "operationName": operation }))
            .await;
        if refused {
            assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
        } else {
            assert!(body["errors"].is_null(), "{operation}: {body}");
        }
    }

    let wide = "{ creators(first: 100) { nodes { videos(first: 100) { nodes { creator { videos(first: 100) { nodes { id } } } } } } } }";
    let body = app.gql(None, wide, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Query is too complex: ")
            && message.contains("above this server's limit of 5000"),
        "{body}"
    );

    // 2 KB of fragments, each spreading the next twice: 2^40 fields once expanded. Refused as
    // written, before anything walks it expanded (which would hold a core for hours).
    let bomb = crate::helpers::fragment_bomb(40);
    let body = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        app.gql(None, &bomb, json!({})),
    )
    .await
    .expect("the server answers");
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("fragments are expanded")),
        "{body}"
    );
    // 20,000 fragments, each spreading the next: one field, 20,000 levels deep. Every walk
    // over the document recursed once a level, and such a chain overflowed the stack, which
    // aborts the whole process. Refused, and the server still answers.
    let chain = crate::helpers::fragment_chain(20_000);
    assert!(chain.len() < 1 << 20, "under the body limit");
    let body = app.gql(None, &chain, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("recursion depth")),
        "{body}"
    );
    // The same chain spread by no operation: validation walks every fragment defined, and
    // this aborted the process as well.
    let unspread = chain.replacen("{ ...f0 }", "{ __typename }", 1);
    let body = app.gql(None, &unspread, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    // 2,000 unused fragments each spreading one of 100 fields: validation expands each.
    let wide = (0..100)
        .map(|i| format!("a{i}: __typename"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut unused = format!("{{ __typename }} fragment w on QueryRoot {{ {wide} }}");
    for n in 0..2000 {
        unused.push_str(&format!(" fragment u{n} on QueryRoot {{ ...w }}"));
    }
    let body = app.gql(None, &unused, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    // Too many arguments or directives in one place (their checks grow with the product):
    // refused as such, before them.
    let arguments = (0..65)
        .map(|i| format!("a{i}: 1"))
        .collect::<Vec<_>>()
        .join(", ");
    let many_arguments = format!("{{ a: me({arguments}) {{ id }} a: me({arguments}) {{ id }} }}");
    let directives = " @skip(if: false)".repeat(17);
    let many_directives = format!("{{ me{directives} {{ id }} }}");
    for (query, message) in [
        (
            many_arguments,
            "a field or directive is given more than 64 arguments",
        ),
        (
            many_directives,
            "a selection carries more than 16 directives",
        ),
    ] {
        let body = app.gql(None, &query, json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["message"], message, "{body}");
    }
    // A literal 500 lists deep (a kilobyte): the parser and every walk over values recursed
    // once a level, and this aborted the process. Refused on the text, before parsing; 100
    // levels are parsed and answered as usual.
    let nested = |around: (&str, &str), open: &str, close: &str, levels: usize| {
        let (before, after) = around;
        let (open, close) = (open.repeat(levels), close.repeat(levels));
        format!("{{ creators(first: {before}{open}1{close}{after}) {{ totalCount }} }}")
    };
    for (open, close) in [("[", "]"), ("{ a: ", " }")] {
        let body = app
            .gql(None, &nested(("", ""), open, close, 500), json!({}))
            .await;
        assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
        let body = app
            .gql(None, &nested(("", ""), open, close, 100), json!({}))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    }
    // Behind a block string that is never closed, which the parser reads as empty strings.
    let hidden = nested(("[\"\"\"\"", "]"), "[", "]", 500);
    let body = app.gql(None, &hidden, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    // A fragment spreading itself, through another: refused as well, before validation.
    let cycle =
        "{ ...A } fragment A on QueryRoot { ...B } fragment B on QueryRoot { __typename ...A }";
    let body = app.gql(None, cycle, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    // 64 levels are served, as async-graphql's own limit allows.
    let data = app
        .ok(None, &crate::helpers::fragment_chain(63), json!({}))
        .await;
    assert!(data["__typename"].is_string(), "{data}");
    // The same fragments spread a few times are served.
    let few = "{ ...A ...A } fragment A on QueryRoot { ...B ...B } fragment B on QueryRoot { __typename }";
    let data = app.ok(None, few, json!({})).await;
    assert!(data["__typename"].is_string(), "{data}");
}

/// The introspection query standard tools send is 15 fields deep; it loads the whole schema
/// although data queries stop at depth 12 (`tests/api/schema.rs` compares what it describes
/// with the committed SDL, through graphql-js).
async fn the_standard_introspection_query_loads_the_schema(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let query = include_str!("fixtures/introspection.graphql");
    let data = app.ok(None, query, json!({})).await;
    let types = data["__schema"]["types"].as_array().expect("types");
    let names: Vec<&str> = types.iter().filter_map(|t| t["name"].as_str()).collect();
    for name in [
        "QueryRoot",
        "MutationRoot",
        "SubscriptionRoot",
        "Video",
        "LayerInput",
        "ConsentAuditConnection",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let layer = types
        .iter()
        .find(|t| t["name"] == "LayerInput")
        .expect("LayerInput");
    assert_eq!(layer["isOneOf"], true);
    // Deeper than the standard query still stops: 26 levels of `ofType`.
    let too_deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(26),
        " }".repeat(26)
    );
    let body = app.gql(None, &too_deep, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    // Data: depth 12 is served, depth 13 refused, also when reached through a fragment.
    let wrap = |inner: &str| format!("videos(first: 1) {{ nodes {{ creator {{ {inner} }} }} }}");
    let at_depth = |leaf: &str| {
        let inner = wrap(&wrap(&wrap(leaf)));
        format!("creators(first: 1) {{ nodes {{ {inner} }} }}")
    };
    let twelve = format!("{{ {} }}", at_depth("id"));
    let body = app.gql(None, &twelve, json!({})).await;
    assert!(body.get("errors").is_none(), "{twelve}: {body}");
    let thirteen = format!("{{ {} }}", at_depth("videos { totalCount }"));
    let body = app.gql(None, &thirteen, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    let via_fragment = format!(
        "{{ ...Q }} fragment Q on Query {{ {} }}",
        at_depth("videos { totalCount }")
    );
    let body = app.gql(None, &via_fragment, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    // Past the parser's own nesting limit (reached before ours is measured): the same code.
    let hundred = format!("{{ {}id{} }}", "a { ".repeat(100), " }".repeat(100));
    let body = app.gql(None, &hundred, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
}

/// Fields under one response key must be one field (spec: Field Selection Merging). Two
/// different fields under one key ran, and whichever finished first filled it: the answer
/// changed from call to call. Refused with both fields' locations, before anything runs;
/// the same field written twice, or fields on types that never both apply, still run.
async fn fields_under_one_key_must_be_one_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.register("merge@example.com").await;
    let token = Some(session.access_token.as_str());
    let cases = [
        (
            "{ a: creators(first: 1) { totalCount } ... on QueryRoot { a: videos(first: 1) { totalCount } } }",
            "Fields \"a\" conflict because \"creators\" and \"videos\" are different fields",
        ),
        (
            "{ me { x: id } me { x: email } }",
            "subfields \"x\" conflict because \"id\" and \"email\" are different fields",
        ),
        (
            "{ node(id: \"x\") { ... on Highlight { durationSecs } ... on Short { durationSecs } } }",
            "conflicting types \"Float!\" and \"Float\"",
        ),
        (
            "mutation { a: updateMe(input: { displayName: \"A\" }) { id } a: updateMe(input: { displayName: \"B\" }) { id } }",
            "differing arguments",
        ),
    ];
    for (query, message) in cases {
        let body = app.gql(token, query, json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{query}: {body}");
        assert!(body.get("data").is_none_or(|d| d.is_null()), "{body}");
        let error = &body["errors"][0];
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains(message)),
            "{query}: {body}"
        );
        assert_eq!(
            error["locations"].as_array().map(Vec::len),
            Some(2),
            "{body}"
        );
    }
    // Nothing ran: the display name is as registered.
    let me = app.ok(token, "{ me { displayName } }", json!({})).await;
    assert_ne!(me["me"]["displayName"], json!("A"), "{me}");
    assert_ne!(me["me"]["displayName"], json!("B"), "{me}");
    for query in [
        "{ me { id } me { email } ... on QueryRoot { me { id } } }",
        "{ node(id: \"x\") { ... on Video { title } ... on Creator { title: name } } }",
    ] {
        let body = app.gql(token, query, json!({})).await;
        assert!(!body.to_string().contains("conflict"), "{query}: {body}");
        assert!(body["data"].is_object(), "ran: {body}");
    }
}

async fn malformed_queries_are_bad_user_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for query in [
        "{ creators { ",
        "{ noSuchField }",
        "{ creators(first: \"ten\") { totalCount } }",
    ] {
        let body = app.gql(None, query, json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{query}: {body}");
    }
    // Each mistake once (async-graphql found an unknown variable type by two rules).
    let body = app
        .gql(None, "query($x: Nope) { me { id } }", json!({}))
        .await;
    let messages: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        ["Unknown type \"Nope\"", "Variable \"$x\" is not used"],
        "{body}"
    );
    // A syntax error says where, and what was expected, without echoing the document (sent on
    // one line, it was repeated whole).
    let long = format!("{{ me {{ id }} }} {}", "x".repeat(5000));
    let body = app.gql(None, &long, json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    let message = body["errors"][0]["message"].as_str().expect("message");
    assert!(
        message.starts_with("syntax error at line 1, column 15: expected"),
        "{message}"
    );
    assert!(message.len() < 200, "{message}");
    // A number too large for any type is said to be, with its place in `locations`, not in a
    // position of the number parser's own.
    let body = app
        .gql(
            None,
            "{\n  highlights(minScore: 1e400) { totalCount }\n}",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    let message = body["errors"][0]["message"].as_str().expect("message");
    assert!(message.starts_with("invalid number: "), "{message}");
    assert!(!message.contains(" at line "), "{message}");
    assert_eq!(body["errors"][0]["locations"][0]["line"], 2, "{body}");
    // A missing argument is named without a wrong type beside it, and is the error's field.
    let body = app.gql(None, "{ video { id } }", json!({})).await;
    assert_eq!(
        body["errors"][0]["message"], r#"Field "video" argument "id" is required but not provided"#,
        "{body}"
    );
    assert_eq!(error_field(&body), "id", "{body}");
    // An enum value is a name, not a string.
    let body = app
        .gql(
            None,
            "{ videos(status: \"READY\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "status", "{body}");
    // Page sizes past 32 bits are refused even where nothing runs (no `me`): every connection
    // reads its `first` for the complexity score (the audit log's did not).
    let body = app
        .gql(
            None,
            "{ me { creators { videos { nodes { consent { auditLog(first: -2147483649) { totalCount } } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    let body = app
        .gql(None, "{ video(id: \"not-a-uuid\") { id } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(error_field(&body), "id");
    // What async-graphql's validation let through and graphql-js refuses: a directive on a
    // variable, `__typename` with arguments, a selection or a directive gone wrong, and a
    // subscription of two root fields beside the query that is picked.
    for (query, operation) in [
        (
            "query($v: Int @foo) { creators(first: $v) { totalCount } }",
            None,
        ),
        // A variable defined twice (refused only when one of the two had a default).
        (
            "query($a: Int, $a: Int) { creators(first: $a) { totalCount } }",
            None,
        ),
        ("{ __typename(x: 1) }", None),
        ("{ me { __typename { x } } }", None),
        ("{ __typename @skip }", None),
        ("{ __typename @skip(if: \"no\") }", None),
        ("query($v: Boolean) { __typename @include(if: $v) }", None),
        (
            "query A { __typename } subscription S { jobsUpdated { id } jobUpdated(id: \"x\") { id } }",
            Some("A"),
        ),
    ] {
        let response = app
            .client
            .post(format!("{}/graphql", app.base))
            .json(&json!({ "query": query, "operationName": operation }))
            .send()
            .await
            .expect("sent");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{query}: {body}");
        assert!(
            body.get("data").is_none_or(|d| d.is_null()),
            "{query}: {body}"
        );
    }

    // A field missing from an input object, or unknown to it, is named in the path, written
    // in the document or sent as a variable.
    let user = app.register("paths@example.com").await;
    let create = "mutation($i: CreateCreatorInput!) { createCreator(input: $i) { id } }";
    for (input, field) in [
        (json!({ "bio": "no name" }), "input.name"),
        (json!({ "name": "Ok", "nmae": "typo" }), "input.nmae"),
    ] {
        let body = app
            .gql(Some(&user.access_token), create, json!({ "i": input }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let body = app
        .gql(
            Some(&user.access_token),
            "mutation { createCreator(input: { bio: \"x\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_field(&body), "input.name", "{body}");

    // A NUL character in any text, by variable or literal: PostgreSQL cannot store one, so
    // both databases refuse it before anything runs, naming where it was.
    let search = "query($s: String) { creators(search: $s) { totalCount } }";
    let body = app.gql(None, search, json!({ "s": "a\u{0}b" })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(
        error_field(&body),
        "search",
        "the argument, not the variable"
    );
    let body = app
        .gql(
            None,
            r#"{ creators(search: "a\u0000b") { totalCount } }"#,
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "search");
    let register = "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }";
    let body = app
        .gql(
            None,
            register,
            json!({ "input": { "email": "nul@example.com", "password": "correct horse battery", "displayName": "Nul\u{0}" } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "input.displayName");
    let body = app
        .gql(
            None,
            "mutation($r: RegisterInput!) { register(input: $r) { accessToken } }",
            json!({ "r": { "email": "nul@example.com", "password": "correct horse battery", "displayName": "Nul\u{0}" } }),
        )
        .await;
    assert_eq!(error_field(&body), "input.displayName", "{body}");
    let data = app
        .ok(
            None,
            register,
            json!({ "input": { "email": "nul@example.com", "password": "correct horse battery" } }),
        )
        .await;
    assert!(
        data["register"]["accessToken"].is_string(),
        "nothing was written by the refusal"
    );
}

/// A variable the request leaves out gets its default from the document; that default is
/// checked as a sent value would be, before anything runs: a NUL character (an internal error
/// on PostgreSQL), a `DateTime` that is no date (the mutation's first field had written by the
/// time the second failed), a year past 9999 (SQLite ordered it before today, so a retention
/// date "in 10000" expired the video at once).
async fn variable_defaults_are_checked_before_anything_runs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = app
        .gql(
            None,
            r#"query($s: String = "a\u0000b") { creators(search: $s) { totalCount } }"#,
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "search", "{body}");
    let body = app
        .gql(
            None,
            r#"query($t: String! = "abcdefgh\u0000") { sharedShort(token: $t) { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "token", "{body}");

    let admin = app.admin("defaults-admin@example.com").await;
    let token = Some(admin.access_token.as_str());
    for at in ["soon", "+10000-01-01T00:00:00Z"] {
        let query = format!(
            r#"mutation($t: DateTime = "{at}") {{
                createCreator(input: {{ name: "Half written" }}) {{ id }}
                createInviteCode(input: {{ uses: 1, expiresAt: $t }}) {{ code }} }}"#
        );
        let body = app.gql(token, &query, json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{at}: {body}");
        assert_eq!(error_field(&body), "input.expiresAt", "{at}: {body}");
        assert!(body["data"].is_null(), "nothing ran: {body}");
        // The same value sent as a variable is refused alike.
        let body = app.gql(token, &query, json!({ "t": at })).await;
        assert_eq!(error_field(&body), "input.expiresAt", "{at}: {body}");
    }
    let creators = app
        .ok(
            token,
            "{ creators(search: \"Half written\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(creators["creators"]["totalCount"], 0, "{creators}");
    // A good default still applies.
    let data = app
        .ok(
            token,
            r#"mutation($t: DateTime = "9999-12-31T00:00:00Z") {
                createInviteCode(input: { uses: 1, expiresAt: $t }) { expiresAt } }"#,
            json!({}),
        )
        .await;
    assert!(
        data["createInviteCode"]["expiresAt"]
            .as_str()
            .is_some_and(|t| t.starts_with("9999-12-31")),
        "{data}"
    );
}

/// A name longer than any in the schema is refused before validation, which would compare it
/// with every known name for a "did you mean" hint (a million-letter field name kept a core
/// busy for seconds and was echoed back whole); the answer does not repeat it.
async fn overlong_names_are_refused_before_validation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let name = "a".repeat(100_000);
    for query in [
        format!("mutation {{ {name} }}"),
        format!("{{ creators({name}: 1) {{ totalCount }} }}"),
        format!("{{ {name}: creators {{ totalCount }} }}"),
        format!(
            "{{ creators {{ ...{name} }} }} fragment {name} on CreatorConnection {{ totalCount }}"
        ),
        format!("query($v: String = \"x\", ${name}: Int) {{ creators {{ totalCount }} }}"),
        format!("{{ videos(status: {name}) {{ totalCount }} }}"),
    ] {
        let body = app.gql(None, &query, json!({})).await;
        assert_eq!(
            error_code(&body),
            "BAD_USER_INPUT",
            "{}",
            &body.to_string()[..200.min(body.to_string().len())]
        );
        assert_eq!(error_field(&body), "query");
        assert!(body.to_string().len() < 1000, "the name is not echoed");
    }
    // A long name that fits is validated as usual.
    let fits = "b".repeat(reelgraph::graphql::inputs::MAX_NAME);
    let body = app.gql(None, &format!("{{ {fits} }}"), json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Unknown field")),
        "{body}"
    );
}

async fn mutations_over_get_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .client
        .get(format!("{}/graphql", app.base))
        .query(&[("query", "mutation { logout(refreshToken: \"x\") }")])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 405);
    // Whatever else is wrong with it (here a variable left out, which the checks before
    // execution refused first with 400), and whichever media type the client takes.
    for accept in ["application/json", "application/graphql-response+json"] {
        let response = app
            .client
            .get(format!("{}/graphql", app.base))
            .header("accept", accept)
            .query(&[(
                "query",
                "mutation($r: String!) { logout(refreshToken: $r) }",
            )])
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 405, "{accept}");
        assert_eq!(response.headers()["allow"], "POST");
    }
    let response = app
        .client
        .get(format!("{}/graphql", app.base))
        .query(&[("query", "{ creators { totalCount } }")])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["data"]["creators"]["totalCount"], 0);
}

async fn health_graphiql_and_metrics_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status(), 200);
    let graphiql = app
        .client
        .get(format!("{}/graphiql", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(graphiql.status(), 200);
    assert!(graphiql.text().await.expect("text").contains("graphiql"));
    app.gql(None, "{ creators { totalCount } }", json!({}))
        .await;
    // Errors are counted by code: a field error, a refusal before execution, a validation error.
    app.gql(None, "{ video(id: \"x\") { id } }", json!({}))
        .await;
    app.gql(None, "query($id: ID!) { video(id: $id) { id } }", json!({}))
        .await;
    app.gql(None, "{ nope }", json!({})).await;
    app.gql(
        None,
        "{ job(id: \"0190c3a4-0000-7000-8000-000000000000\") { id } }",
        json!({}),
    )
    .await;
    // A bad token is refused before the operation runs; it is counted all the same.
    app.gql(Some("not-a-token"), "{ me { id } }", json!({}))
        .await;
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("sent");
    let text = metrics.text().await.expect("text");
    assert!(
        // Every operation handed to the schema; the one refused before (missing variable) is not.
        text.lines()
            .any(|line| line == "reelgraph_graphql_operations_total 4"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line == "reelgraph_graphql_errors_total{code=\"BAD_USER_INPUT\"} 3"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line == "reelgraph_graphql_errors_total{code=\"UNAUTHENTICATED\"} 2"),
        "{text}"
    );
}

/// An operation whose root fields are all left out answers `{}` (the operation ran, and chose
/// nothing): async-graphql answered `"data": null` with no error, on HTTP and WebSocket alike.
async fn an_operation_with_every_root_field_left_out_answers_an_empty_object(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("chose-nothing@example.com").await;
    let query = "query($full: Boolean!) { me @include(if: $full) { id } c: creators @skip(if: true) { totalCount } }";
    let body = app
        .gql(Some(&user.access_token), query, json!({ "full": false }))
        .await;
    assert_eq!(body, json!({ "data": {} }));
    let data = app
        .ok(Some(&user.access_token), query, json!({ "full": true }))
        .await;
    assert!(data["me"]["id"].is_string(), "{data}");
    let mut socket = crate::helpers::subscribe(
        &app.base,
        &user.access_token,
        query,
        json!({ "full": false }),
    )
    .await;
    let payload = crate::helpers::next_payload(&mut socket).await;
    assert_eq!(payload, json!({ "data": {} }));

    // Below the root too: an object with no field selected is `{}`, not `null` (which reads
    // as "not found"): every field skipped, or only a fragment on another type.
    let creator = app.create_creator(&user, "Chose Nothing").await;
    let nested = "query($id: ID!, $s: Boolean!) {
        me { i: id @skip(if: $s) creators { id @skip(if: $s) name @include(if: false) } }
        creator(id: $id) { ...F }
        node(id: $id) { ... on Video { title } ... @include(if: $s) { id } }
        creators { nodes { ... on Creator @skip(if: $s) { name } } }
    }
    fragment F on Creator { slug @skip(if: $s) }";
    let vars = json!({ "id": creator, "s": true });
    let expected = json!({
        "me": { "creators": [{}] },
        "creator": {},
        "node": { "id": creator },
        "creators": { "nodes": [{}] },
    });
    let data = app.ok(Some(&user.access_token), nested, vars.clone()).await;
    assert_eq!(data, expected);
    let mut socket = crate::helpers::subscribe(&app.base, &user.access_token, nested, vars).await;
    let payload = crate::helpers::next_payload(&mut socket).await;
    assert_eq!(payload, json!({ "data": expected }));
    // Selected, the fields are there, and no key of the server's own.
    let data = app
        .ok(
            Some(&user.access_token),
            nested,
            json!({ "id": creator, "s": false }),
        )
        .await;
    assert_eq!(
        data["creator"],
        json!({ "slug": "chose-nothing" }),
        "{data}"
    );
    assert_eq!(data["node"], json!({}), "{data}");
    assert_eq!(
        data["me"]["creators"][0],
        json!({ "id": creator }),
        "{data}"
    );
    assert_eq!(
        data["creators"]["nodes"][0],
        json!({ "name": "Chose Nothing" }),
        "{data}"
    );
}

/// Parsed documents are kept by query text (`graphql::documents`); each request must still get
/// its own `@skip`, operation, limits and GET rules.
async fn a_query_text_sent_again_is_answered_for_its_own_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("docs@example.com").await;
    app.create_creator(&admin, "Kept Parsed").await;

    let skipping = "query Q($skip: Boolean!) { creators { nodes { id name @skip(if: $skip) } } }";
    for skip in [true, false, true, false] {
        let data = app.ok(None, skipping, json!({ "skip": skip })).await;
        let node = &data["creators"]["nodes"][0];
        assert!(node["id"].is_string(), "{data}");
        assert_eq!(node.get("name").is_none(), skip, "skip = {skip}: {data}");
    }

    let two = "query Count { creators { totalCount } } query Names { creators { nodes { name } } }";
    for _ in 0..2 {
        for (name, expected) in [
            ("Count", json!({ "creators": { "totalCount": 1 } })),
            (
                "Names",
                json!({ "creators": { "nodes": [{ "name": "Kept Parsed" }] } }),
            ),
        ] {
            let response = app
                .client
                .post(format!("{}/graphql", app.base))
                .json(&json!({ "query": two, "operationName": name }))
                .send()
                .await
                .expect("sent");
            let body: serde_json::Value = response.json().await.expect("json");
            assert_eq!(body["data"], expected, "{name}: {body}");
        }
    }

    let mut deep = String::from("id");
    for _ in 0..8 {
        deep = format!("videos {{ nodes {{ creator {{ {deep} }} }} }}");
    }
    let deep = format!("{{ creators {{ nodes {{ {deep} }} }} }}");
    for _ in 0..2 {
        let body = app.gql(None, &deep, json!({})).await;
        assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
        let body = app.gql(None, "{ creators { ", json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    }

    // Sent by POST first, so its document is kept; GET still refuses it.
    let logout = "mutation { logout(refreshToken: \"x\") }";
    app.gql(None, logout, json!({})).await;
    let response = app
        .client
        .get(format!("{}/graphql", app.base))
        .query(&[("query", logout)])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 405);
}

/// The database ends every connection (a restart, a failover, an administrator): requests
/// after it do not fail on the pool's dead connections. Connections idle for a second are
/// checked before use; after one was found dead while busy, all are for a while, so only the
/// request that found it fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_after_the_database_ended_its_connections_succeed() {
    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let ada = app.register("restart@example.com").await;
    let token = Some(ada.access_token.as_str());
    let rename = "mutation($n: String) { updateMe(input: {displayName: $n}) { displayName } }";
    // Several connections in the pool: as many requests at once.
    let warm = || async {
        let reads = (0..4).map(|_| app.gql(token, "{ me { id } }", json!({})));
        for body in futures_util::future::join_all(reads).await {
            assert!(body["errors"].is_null(), "{body}");
        }
    };

    // Quiet for a second, then ended: every request after succeeds.
    warm().await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    crate::helpers::end_database_connections(&app).await;
    for i in 0..6 {
        let body = app
            .gql(token, rename, json!({ "n": format!("quiet {i}") }))
            .await;
        assert!(
            body["errors"].is_null(),
            "request {i} after the restart: {body}"
        );
    }

    // Ended while hot: at most the first request fails, then the rest are checked.
    warm().await;
    crate::helpers::end_database_connections(&app).await;
    for i in 0..6 {
        let body = app
            .gql(token, rename, json!({ "n": format!("busy {i}") }))
            .await;
        if i > 0 {
            assert!(
                body["errors"].is_null(),
                "request {i} after the restart: {body}"
            );
        }
    }
}

/// A document of one mistake repeated (500 unknown fields, 500 unused variables) is
/// answered with at most 100 errors, the last saying how many more there were, as graphql-js
/// stops at 100: the answer stays small whatever the document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_lists_at_most_a_hundred_errors() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let unknown = crate::helpers::unknown_fields(500);
    let variables = format!(
        "query({}) {{ me {{ id }} }}",
        (0..500)
            .map(|i| format!("$v{i}: Int"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // 500 unknown fields; 500 unused variables.
    for (query, left_out) in [(unknown, 401), (variables, 401)] {
        let body = app.gql(None, &query, json!({})).await;
        let errors = body["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 100, "{body}");
        assert_eq!(
            errors[99]["message"],
            format!("{left_out} more errors left out (an answer lists at most 100)")
        );
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
        assert_eq!(errors[99]["extensions"]["code"], "BAD_USER_INPUT");
    }
}

/// A request that runs out of time is stopped with a 504 (not a 408, which clients resend by
/// themselves) whose body says so (code INTERNAL,
/// no internal detail), and what it was doing is not kept: registering hashes the password
/// first, which alone takes longer than the 1 ms this server allows.
async fn a_request_out_of_time_is_stopped_and_keeps_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.config.request_timeout_ms = 1).await;
    let response = app
        .client
        .post(format!("{}/graphql", app.base))
        .json(&json!({ "query": "mutation { register(input: {email: \"late@example.com\", password: \"correct horse battery\"}) { accessToken } }" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 504);
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    assert_eq!(error_code(&body), "INTERNAL", "{body}");
    assert_eq!(
        body["errors"][0]["message"],
        "the request was stopped after 1 ms; what it had not committed was rolled back"
    );
    assert!(body.get("data").is_none(), "{body}");
    // The hashing may still finish in the background; the insert after it must not happen.
    // Wait, on this machine as loaded as it is now, for two hashes of our own, one after the
    // other, plus as long again: the abandoned one started before them.
    let started = std::time::Instant::now();
    for _ in 0..2 {
        reelgraph::auth::password::hash("correct horse battery".into())
            .await
            .expect("hashed");
    }
    tokio::time::sleep(started.elapsed()).await;
    let users = entity::user::Entity::find()
        .count(&app.state.db)
        .await
        .expect("counted");
    assert_eq!(users, 0);
}

/// `/livez` says the process serves; `/healthz` says it can do its work (the database
/// answers). With the database gone, only `/healthz` fails — an orchestrator probing liveness
/// does not restart replicas over a database outage.
async fn liveness_and_readiness_differ_when_the_database_is_gone(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let status = |path: &'static str| {
        let app = &app;
        async move {
            app.client
                .get(format!("{}{path}", app.base))
                .send()
                .await
                .expect("sent")
                .status()
        }
    };
    assert_eq!(status("/livez").await, 200);
    assert_eq!(status("/healthz").await, 200);
    app.state.db.clone().close().await.expect("pool closed");
    assert_eq!(status("/livez").await, 200);
    assert_eq!(status("/healthz").await, 503);
}

/// Plain list fields return everything a row has, and each alias resolves again: a request
/// gets 50,000 list items in all (shared by the operations of a batch), then one
/// `QUERY_TOO_COMPLEX` error and no data (not the lists that fitted, beside an error for each
/// list past the budget).
async fn aliases_of_whole_lists_run_out_of_list_items(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("lister@example.com").await;
    let creator = app.create_creator(&owner, "Lister").await;
    let video = crate::helpers::insert_video(
        &app,
        &creator,
        "many moments",
        entity::VideoStatus::Ready,
        Some(600.0),
    )
    .await;
    let moments: Vec<_> = (0..500)
        .map(|i| json!({ "title": format!("m{i}"), "startTime": i, "endTime": i + 1 }))
        .collect();
    app.ok(
        Some(&owner.access_token),
        "mutation($v: ID!, $m: [KeyMomentInput!]!) { addKeyMoments(videoId: $v, moments: $m) { id } }",
        json!({ "v": video.to_string(), "m": moments }),
    )
    .await;
    let aliases = |n: usize| {
        let fields: String = (0..n)
            .map(|i| format!(" a{i}: keyMoments {{ id }}"))
            .collect();
        format!("query($v: ID!) {{ video(id: $v) {{{fields} }} }}")
    };
    let vars = json!({ "v": video.to_string() });

    // 100 × 500 items: the whole budget, anonymously.
    let data = app.ok(None, &aliases(100), vars.clone()).await;
    assert_eq!(data["video"]["a99"].as_array().map(Vec::len), Some(500));

    for n in [101, 300] {
        let body = app.gql(None, &aliases(n), vars.clone()).await;
        assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{}", body["errors"]);
        assert!(body["data"].is_null(), "{n} aliases: no half answer");
        let errors = body["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1, "{n} aliases: one error, not one per list");
        assert!(
            errors[0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("more than 50000 items of lists")),
            "{errors:?}"
        );
    }

    // A batch shares one budget: 2 × 51 × 500 > 50,000. The operations run side by side, so
    // either may be the one that runs out (or both, when the other was not done yet).
    let one = json!({ "query": aliases(51), "variables": vars });
    let answers: serde_json::Value = app.post_body(None, &json!([one, one])).await;
    let codes: Vec<&str> = [&answers[0], &answers[1]]
        .into_iter()
        .map(|answer| {
            if answer["errors"].is_null() {
                "ok"
            } else {
                error_code(answer)
            }
        })
        .collect();
    assert!(
        codes.contains(&"QUERY_TOO_COMPLEX")
            && codes
                .iter()
                .all(|c| ["ok", "QUERY_TOO_COMPLEX"].contains(c)),
        "{codes:?}"
    );
    for (answer, code) in [&answers[0], &answers[1]].into_iter().zip(&codes) {
        if *code == "ok" {
            assert_eq!(
                answer["data"]["video"]["a50"].as_array().map(Vec::len),
                Some(500)
            );
        } else {
            assert!(answer["data"].is_null(), "{}", answer["errors"]);
            assert_eq!(answer["errors"].as_array().map(Vec::len), Some(1));
        }
    }

    // A mutation after the budget ran out (a batch with a mutation runs in order) still says
    // what it wrote: its lists fail, its data stays, and the client does not send it again.
    let query = json!({ "query": aliases(100), "variables": vars });
    let mutation = json!({ "query": "mutation { createCreator(input: { name: \"After The Budget\" }) { id members { role } } }" });
    let answers: serde_json::Value = app
        .post_body(Some(&owner.access_token), &json!([query, mutation]))
        .await;
    assert!(answers[0]["errors"].is_null(), "{}", answers[0]);
    assert!(
        answers[1]["data"]["createCreator"]["id"].is_string(),
        "{}",
        answers[1]
    );
    assert_eq!(
        error_code(&answers[1]),
        "QUERY_TOO_COMPLEX",
        "{}",
        answers[1]
    );
}

/// Introspection's lists count against the list budget: aliases of a whole-schema walk (60 KB of
/// query) built 37 MB of answer, and a batch of ten 367 MB. The standard introspection query,
/// ten times in one batch, still fits.
async fn aliases_of_introspection_lists_run_out_of_list_items(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let aliases = |n: usize| -> String {
        (0..n)
            .map(|i| format!(" a{i}: __schema {{ types {{ fields {{ description }} }} }}"))
            .collect()
    };
    let walk = |n: usize| format!("{{{} }}", aliases(n));
    let data = app.ok(None, &walk(2), json!({})).await;
    let types = data["a1"]["types"].as_array().expect("types");
    let items: usize = types.len()
        + types
            .iter()
            .filter_map(|t| t["fields"].as_array())
            .map(Vec::len)
            .sum::<usize>();
    assert!(items > 400, "a whole-schema walk lists {items} items");
    // Enough aliases for twice the budget.
    let over = 2 * 50_000 / items + 1;
    let body = app.gql(None, &walk(over), json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{}", body["errors"]);
    assert!(body["data"].is_null(), "no half answer");
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(1));
    // Through a fragment, and in a batch beside a data query, the same.
    let fragment = format!("{{ ...W }} fragment W on QueryRoot {{{} }}", aliases(over));
    let standard = json!({ "query": include_str!("fixtures/introspection.graphql") });
    let answers: serde_json::Value = app
        .post_body(
            None,
            &json!([{ "query": fragment }, { "query": "{ me { id } }" }]),
        )
        .await;
    assert_eq!(
        error_code(&answers[0]),
        "QUERY_TOO_COMPLEX",
        "{}",
        answers[0]
    );
    assert!(answers[1]["errors"].is_null(), "{}", answers[1]);
    let answers = app.post_body(None, &json!(vec![standard; 10])).await;
    for answer in answers.as_array().expect("a batch answer") {
        assert!(answer["errors"].is_null(), "{}", answer["errors"]);
        assert!(answer["data"]["__schema"]["types"].is_array());
    }
}

both_backends!(
    aliases_of_introspection_lists_run_out_of_list_items,
    an_operation_with_every_root_field_left_out_answers_an_empty_object,
    aliases_of_whole_lists_run_out_of_list_items,
    fields_under_one_key_must_be_one_field,
    deep_and_expensive_queries_are_rejected_before_running,
    the_standard_introspection_query_loads_the_schema,
    malformed_queries_are_bad_user_input,
    mutations_over_get_are_refused,
    variable_defaults_are_checked_before_anything_runs,
    overlong_names_are_refused_before_validation,
    health_graphiql_and_metrics_answer,
    a_query_text_sent_again_is_answered_for_its_own_request,
    a_request_out_of_time_is_stopped_and_keeps_nothing,
    liveness_and_readiness_differ_when_the_database_is_gone,
);

/// Large answers are gzipped for clients that ask for it; small ones, and clients that do not
/// ask, get plain JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_are_gzipped_for_clients_that_accept_it() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let raw = reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client");
    let url = format!("{}/graphql", app.base);
    let introspection = json!({ "query": include_str!("fixtures/introspection.graphql") });
    let zipped = raw
        .post(&url)
        .header("accept-encoding", "gzip")
        .json(&introspection)
        .send()
        .await
        .expect("sent");
    assert_eq!(zipped.status(), 200);
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let zipped = zipped.bytes().await.expect("body");
    assert_eq!(&zipped[..2], &[0x1f, 0x8b], "a gzip stream");
    let plain = raw
        .post(&url)
        .json(&introspection)
        .send()
        .await
        .expect("sent");
    assert!(plain.headers().get("content-encoding").is_none());
    let plain: serde_json::Value = plain.json().await.expect("JSON");
    assert!(
        zipped.len() * 4 < plain.to_string().len(),
        "{} bytes",
        zipped.len()
    );
    // A client that decompresses (reqwest with gzip, like browsers) reads the same answer.
    let unzipped: serde_json::Value = app
        .client
        .post(&url)
        .json(&introspection)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    assert_eq!(unzipped, plain);
    // Small answers stay plain.
    let small = raw
        .post(&url)
        .header("accept-encoding", "gzip")
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .expect("sent");
    assert!(small.headers().get("content-encoding").is_none());
}

/// `REELGRAPH_CORS_ORIGINS` lists the origins browsers may call from; `*` allows any (it used
/// to reach tower-http's origin list and stop the server at start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_the_listed_origins_or_any_with_a_star() {
    let preflight = |app: &TestApp, origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = |response: &reqwest::Response| {
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    };
    let listed = TestApp::spawn_with(Backend::Sqlite, |a| {
        a.config.cors_origins = vec!["https://app.example.com".into()];
        // Where clients reach it, through a proxy that may say another `Host`.
        a.config.public_url = Some("https://api.example.com/".into());
    })
    .await;
    let ok = preflight(&listed, "https://app.example.com")
        .await
        .expect("sent");
    assert_eq!(allowed(&ok).as_deref(), Some("https://app.example.com"));
    let other = preflight(&listed, "https://evil.example.net")
        .await
        .expect("sent");
    assert_eq!(allowed(&other), None);

    let any = TestApp::spawn_with(Backend::Sqlite, |a| {
        a.config.cors_origins = vec!["*".into()];
    })
    .await;
    let ok = preflight(&any, "https://evil.example.net")
        .await
        .expect("sent");
    assert_eq!(allowed(&ok).as_deref(), Some("*"));

    // Browsers apply no CORS to WebSockets: the server holds the list against their `Origin`.
    // A client that is no browser sends none; the server's own pages (GraphiQL) are of its
    // origin.
    for (app, origin, status) in [
        (&listed, Some("https://evil.example.net"), 403),
        (&listed, Some("https://app.example.com"), 101),
        (&listed, Some(listed.base.as_str()), 101),
        (&listed, Some("HTTPS://App.example.com:443"), 101),
        (&listed, Some("https://api.example.com"), 101),
        (&listed, Some("http://api.example.com"), 403),
        (&listed, Some("null"), 403),
        (&listed, None, 101),
        (&any, Some("https://evil.example.net"), 101),
    ] {
        assert_eq!(ws_upgrade_status(app, origin).await, status, "{origin:?}");
    }
}

/// The status a `graphql-transport-ws` upgrade from `origin` gets.
async fn ws_upgrade_status(app: &TestApp, origin: Option<&str>) -> u16 {
    use tokio_tungstenite::tungstenite::{Error, client::IntoClientRequest};
    let url = format!("{}/graphql/ws", app.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", origin.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("upgrade failed: {other}"),
    }
}

/// Settings out of their range are refused at start, naming the range, instead of panicking
/// later (a session lifetime of 10^9 days overflowed the clock at every sign-in); so are a
/// `PUBLIC_URL` that is no URL (every local storage link would be broken) and a database URL of
/// another kind, before a JWT secret is generated and saved.
#[tokio::test]
async fn settings_out_of_range_are_refused_at_start() {
    for (name, value, range) in [
        ("REELGRAPH_SESSION_TTL_DAYS", "1000000000", "1..=3650"),
        ("REELGRAPH_JOB_POLL_MS", "0", "10..=3600000"),
        ("DATABASE_MAX_CONNECTIONS", "0", "1..=10000"),
        ("REELGRAPH_WS_MAX_SOCKETS_PER_ACCOUNT", "0", "1..=100000"),
        (
            "PUBLIC_URL",
            "notaurl",
            "PUBLIC_URL must be an http:// or https:// URL",
        ),
        ("DATABASE_URL", "mysql://db/app", "got scheme `mysql`"),
    ] {
        let data_dir = tempfile::tempdir().expect("dir");
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_reelgraph"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("DATABASE_URL")
            .env("REELGRAPH_DATA_DIR", data_dir.path())
            .env(name, value)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(std::time::Duration::from_secs(30), output)
            .await
            .expect("refused at once")
            .expect("runs");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}={value}: {said}");
        assert!(said.contains(range), "{name}={value}: {said}");
        // Refused before anything was done: no secret generated and saved for it.
        assert!(
            !data_dir.path().join("jwt-secret").exists(),
            "{name}={value}: a secret was made"
        );
    }
}

/// A variable whose value is not of its type refuses the whole request before any field
/// runs: a mutation's earlier fields write nothing. The error names where the value goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_variable_refuses_the_request_before_anything_is_written() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.admin("vars@example.com").await;
    let token = Some(admin.access_token.as_str());
    let creators = || async {
        app.ok(token, "{ creators { totalCount } }", json!({}))
            .await["creators"]["totalCount"]
            .clone()
    };
    let before = creators().await;
    for (query, variables, field) in [
        (
            "mutation($d: DateTime) { c: createCreator(input: {name: \"Side Effect\"}) { id }
              i: createInviteCode(input: {expiresAt: $d}) { code } }",
            json!({ "d": "yesterday" }),
            "input.expiresAt",
        ),
        (
            "mutation($i: CreateInviteCodeInput!) { c: createCreator(input: {name: \"Side Effect\"}) { id }
              i: createInviteCode(input: $i) { code } }",
            json!({ "i": { "uses": 5_000_000_000_i64 } }),
            "input.uses",
        ),
        (
            "mutation($n: Int!, $u: ID!) { c: createCreator(input: {name: \"Side Effect\"}) { id }
              g: grantCredits(userId: $u, credits: $n) }",
            json!({ "n": 2.5, "u": admin.user_id }),
            "credits",
        ),
        // Text where an input object belongs, as a variable or written in the query.
        (
            "mutation($a: CreateCreatorInput!, $b: CreateCreatorInput!) {
              a: createCreator(input: $a) { id } b: createCreator(input: $b) { id } }",
            json!({ "a": { "name": "Side Effect" }, "b": "Two" }),
            "input",
        ),
        (
            "mutation { a: createCreator(input: {name: \"Side Effect\"}) { id }
              b: createCreator(input: \"Two\") { id } }",
            json!({}),
            "input",
        ),
        // Literals async-graphql's validation lets through.
        (
            "mutation { c: createCreator(input: {name: \"Side Effect\"}) { id }
              i: createInviteCode(input: {expiresAt: \"tomorrow\"}) { code } }",
            json!({}),
            "input.expiresAt",
        ),
        (
            "mutation { c: createCreator(input: {name: \"Side Effect\"}) { id }
              i: createInviteCode(input: {uses: 3000000000}) { code } }",
            json!({}),
            "input.uses",
        ),
    ] {
        let body = app.gql(token, query, variables).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
        assert!(body["data"].is_null(), "{body}");
    }
    assert_eq!(creators().await, before, "nothing was written");
}

/// An object whose only selected field failed is still the object, with that field null (and
/// the error pointing at it): async-graphql alone answered `"me": null`, which reads as
/// "signed out".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_whose_fields_all_failed_is_not_null() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let ada = app.register("all-failed@example.com").await;
    let body = app
        .gql(
            Some(&ada.access_token),
            "{ me { creditLedger(first: 500) { totalCount } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(
        body["data"],
        json!({ "me": { "creditLedger": null } }),
        "{body}"
    );
}
