use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{Backend, TestApp, error_code, error_field},
};

async fn creating_a_creator_makes_the_caller_its_owner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("owner@example.com").await;
    let data = app
        .ok(
            Some(&owner.access_token),
            r#"mutation { createCreator(input: {name: "Bass Lab", genres: ["dubstep", "Dubstep", "sound design"], socialLinks: {youtube: "https://youtube.com/@basslab"}}) {
                id name slug genres socialLinks featured viewerCanManage followerCount } }"#,
            json!({}),
        )
        .await;
    let creator = &data["createCreator"];
    assert_eq!(creator["slug"], "bass-lab");
    assert_eq!(creator["genres"], json!(["dubstep", "sound design"]));
    assert_eq!(
        creator["socialLinks"]["youtube"],
        "https://youtube.com/@basslab"
    );
    assert_eq!(creator["viewerCanManage"], true);
    assert_eq!(creator["featured"], false);

    let me = app
        .ok(
            Some(&owner.access_token),
            "{ me { role creators { slug } } }",
            json!({}),
        )
        .await;
    assert_eq!(me["me"]["role"], "CREATOR");
    assert_eq!(me["me"]["creators"], json!([{ "slug": "bass-lab" }]));

    let by_slug = app
        .ok(
            None,
            "{ creator(slug: \"bass-lab\") { name viewerCanManage } }",
            json!({}),
        )
        .await;
    assert_eq!(by_slug["creator"]["name"], "Bass Lab");
    assert_eq!(by_slug["creator"]["viewerCanManage"], false);

    let anonymous = app
        .gql(
            None,
            "mutation { createCreator(input: {name: \"Nope\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
}

/// A personality profile is set at creation or later, shown to anyone (also in a page of
/// creators, whose statement leaves out the columns no field reads), removed with `null`, and
/// refused unless it is a JSON object of at most 16 KiB.
async fn a_personality_profile_is_public_and_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("persona@example.com").await;
    let token = Some(owner.access_token.as_str());
    let data = app
        .ok(
            token,
            "mutation($p: JSON) { createCreator(input: {name: \"Persona\", personalityProfile: $p}) { id personalityProfile } }",
            json!({ "p": { "tone": "playful", "traits": ["curious", "precise"] } }),
        )
        .await;
    let id = data["createCreator"]["id"].as_str().expect("id").to_owned();
    let profile = json!({ "tone": "playful", "traits": ["curious", "precise"] });
    assert_eq!(data["createCreator"]["personalityProfile"], profile);
    let data = app
        .ok(
            None,
            "{ creators(first: 5) { nodes { name personalityProfile } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["creators"]["nodes"],
        json!([{ "name": "Persona", "personalityProfile": profile }])
    );
    let update = "mutation($id: ID!, $input: UpdateCreatorInput!) { updateCreator(id: $id, input: $input) { bio personalityProfile } }";
    for (value, message) in [
        (json!(["not", "an", "object"]), "must be an object"),
        (
            json!({ "notes": "x".repeat(17 * 1024) }),
            "at most 16384 bytes",
        ),
    ] {
        let body = app
            .gql(
                token,
                update,
                json!({ "id": id, "input": { "personalityProfile": value } }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), "input.personalityProfile", "{body}");
        assert!(body.to_string().contains(message), "{body}");
    }
    // Nested past 32 levels, written as a literal (which no JSON parser's depth limit
    // stops): refused, and the creator stays readable. Stored, a value past serde_json's 128
    // levels could no longer be read back, so every read of the creator failed.
    // (Past 128 levels the query text itself is refused, QUERY_TOO_COMPLEX, before parsing.)
    for (levels, template) in [(33, false), (100, false), (100, true)] {
        let deep = format!("{}1{}", "{ a: ".repeat(levels), " }".repeat(levels));
        let field = if template {
            "shortsTemplate"
        } else {
            "personalityProfile"
        };
        let literal = format!(
            "mutation($id: ID!) {{ updateCreator(id: $id, input: {{ {field}: {deep} }}) {{ id }} }}"
        );
        let body = app.gql(token, &literal, json!({ "id": id })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{levels}: {body}");
        assert_eq!(error_field(&body), format!("input.{field}"), "{body}");
        assert!(body.to_string().contains("at most 32 levels"), "{body}");
    }
    let thirty_two = format!("{}1{}", "{ a: ".repeat(32), " }".repeat(32));
    let literal = format!(
        "mutation($id: ID!) {{ updateCreator(id: $id, input: {{ personalityProfile: {thirty_two} }}) {{ id }} }}"
    );
    app.ok(token, &literal, json!({ "id": id })).await;
    let read = "query($id: ID!) { creator(id: $id) { personalityProfile } }";
    let data = app.ok(None, read, json!({ "id": id })).await;
    assert!(
        data["creator"]["personalityProfile"]["a"].is_object(),
        "{data}"
    );
    app.ok(
        token,
        update,
        json!({ "id": id, "input": { "personalityProfile": profile } }),
    )
    .await;
    // Other fields leave it alone; null removes it.
    let data = app
        .ok(token, update, json!({ "id": id, "input": { "bio": "Hi" } }))
        .await;
    assert_eq!(data["updateCreator"]["personalityProfile"], profile);
    let data = app
        .ok(
            token,
            update,
            json!({ "id": id, "input": { "personalityProfile": null } }),
        )
        .await;
    assert_eq!(data["updateCreator"]["personalityProfile"], json!(null));
    let data = app
        .ok(
            None,
            "query($id: ID!) { creator(id: $id) { personalityProfile } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data["creator"]["personalityProfile"], json!(null));
}

async fn duplicate_names_and_slugs_conflict_and_bad_input_names_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("dup@example.com").await;
    app.create_creator(&owner, "Synth School").await;
    let create = "mutation($input: CreateCreatorInput!) { createCreator(input: $input) { id } }";
    let token = Some(owner.access_token.as_str());

    let same_name = app
        .gql(
            token,
            create,
            json!({ "input": { "name": "Synth School", "slug": "other" } }),
        )
        .await;
    assert_eq!(error_code(&same_name), "CONFLICT");
    assert_eq!(error_field(&same_name), "input.name");
    let same_slug = app
        .gql(
            token,
            create,
            json!({ "input": { "name": "Synth School 2", "slug": "synth-school" } }),
        )
        .await;
    assert_eq!(error_code(&same_slug), "CONFLICT");
    assert_eq!(error_field(&same_slug), "input.slug");
    // A root field of a mutation that fails where no null is allowed makes `data` null: the
    // fields after it do not run (as graphql-js stops), or the client, told nothing of them,
    // would send them again.
    let body = app
        .gql(
            token,
            "mutation { a: createCreator(input: {name: \"Synth School\"}) { id }
                        b: createCreator(input: {name: \"Never Made\"}) { id } }",
            json!({}),
        )
        .await;
    assert!(body["data"].is_null(), "{body}");
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["a"]), "{body}");
    let found = app
        .ok(
            None,
            "{ creators(search: \"Never Made\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(found["creators"]["totalCount"], 0, "{found}");
    // Without a slug, the clash is named on the name the client sent: the very name, or
    // another creator's slug that this name makes.
    for (name, message) in [
        ("Synth School", "a creator with this name already exists"),
        (
            "synth school!",
            "the slug made from this name, `synth-school`",
        ),
    ] {
        let body = app
            .gql(token, create, json!({ "input": { "name": name } }))
            .await;
        assert_eq!(error_code(&body), "CONFLICT", "{body}");
        assert_eq!(error_field(&body), "input.name", "{body}");
        assert!(body.to_string().contains(message), "{body}");
    }

    let cases = [
        (json!({ "name": "" }), "input.name"),
        (json!({ "name": "ok", "slug": "Not A Slug" }), "input.slug"),
        (
            json!({ "name": "ok", "avatarUrl": "javascript:alert(1)" }),
            "input.avatarUrl",
        ),
        (
            json!({ "name": "ok", "genres": ["fine", ""] }),
            "input.genres.1",
        ),
        (
            json!({ "name": "ok", "socialLinks": ["not", "an", "object"] }),
            "input.socialLinks",
        ),
        (
            json!({ "name": "ok", "socialLinks": { "x": "ftp://nope" } }),
            "input.socialLinks.x",
        ),
        // PostgreSQL's jsonb cannot hold a NUL, in a key either.
        (
            json!({ "name": "ok", "socialLinks": { "x\u{0}": "https://a.example" } }),
            "input.socialLinks",
        ),
        (
            json!({ "name": "ok", "shortsTemplate": { "font\u{0}": "Inter" } }),
            "input.shortsTemplate",
        ),
        // Cards the renderer could not draw are refused when stored, not when a short renders.
        (
            json!({ "name": "ok", "shortsTemplate": { "intro": { "text": "Hi", "durationSecs": 60 } } }),
            "input.shortsTemplate.intro.durationSecs",
        ),
        (
            json!({ "name": "ok", "shortsTemplate": { "outro": { "text": "Bye", "color": "#fff" } } }),
            "input.shortsTemplate.outro.color",
        ),
    ];
    for (input, field) in cases {
        let body = app.gql(token, create, json!({ "input": input })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}: {body}");
        assert_eq!(error_field(&body), field, "{input}: {body}");
    }
    let all = app.ok(None, "{ creators { totalCount } }", json!({})).await;
    assert_eq!(
        all["creators"]["totalCount"], 1,
        "no failed create left a row behind"
    );
    // So does a field under it that fails where no null is allowed up to the root (a bad
    // cursor on the non-null `videos` of the non-null creator): `a` was written, `b` is not.
    let body = app
        .gql(
            token,
            "mutation { a: createCreator(input: {name: \"Made First\"}) { id videos(after: \"x\") { totalCount } }
                        b: createCreator(input: {name: \"Never Made Either\"}) { id } }",
            json!({}),
        )
        .await;
    assert!(body["data"].is_null(), "{body}");
    for (name, expected) in [("Made First", 1), ("Never Made Either", 0)] {
        let found = app
            .ok(
                None,
                "query($s: String) { creators(search: $s) { totalCount } }",
                json!({ "s": name }),
            )
            .await;
        assert_eq!(found["creators"]["totalCount"], expected, "{name}: {found}");
    }
}

async fn only_members_and_admins_update_a_creator(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("own@example.com").await;
    let stranger = app.register("stranger@example.com").await;
    let admin = app.admin("admin@example.com").await;
    let id = app.create_creator(&owner, "Drum Corner").await;
    let update = "mutation($id: ID!, $input: UpdateCreatorInput!) { updateCreator(id: $id, input: $input) { bio featured avatarUrl } }";

    let body = app
        .gql(
            Some(&stranger.access_token),
            update,
            json!({ "id": id, "input": { "bio": "hijacked" } }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        "FORBIDDEN",
        "a visible creator that the caller may not change"
    );
    let missing = app
        .gql(
            Some(&owner.access_token),
            update,
            json!({ "id": uuid::Uuid::now_v7(), "input": { "bio": "x" } }),
        )
        .await;
    assert_eq!(error_code(&missing), "NOT_FOUND");
    let anonymous = app
        .gql(None, update, json!({ "id": id, "input": { "bio": "x" } }))
        .await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");

    let data = app
        .ok(Some(&owner.access_token), update, json!({ "id": id, "input": { "bio": "Beats.", "avatarUrl": "https://img.example.com/a.png" } }))
        .await;
    assert_eq!(data["updateCreator"]["bio"], "Beats.");
    let feature = app
        .gql(
            Some(&owner.access_token),
            update,
            json!({ "id": id, "input": { "featured": true } }),
        )
        .await;
    assert_eq!(error_code(&feature), "FORBIDDEN");
    let data = app
        .ok(
            Some(&admin.access_token),
            update,
            json!({ "id": id, "input": { "featured": true, "avatarUrl": null } }),
        )
        .await;
    assert_eq!(data["updateCreator"]["featured"], true);
    assert!(
        data["updateCreator"]["avatarUrl"].is_null(),
        "explicit null clears"
    );
    assert_eq!(
        data["updateCreator"]["bio"], "Beats.",
        "omitted fields stay"
    );

    let featured = app
        .ok(
            None,
            "{ creators(featured: true) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(featured["creators"]["nodes"], json!([{ "id": id }]));
}

async fn following_is_idempotent_and_counted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("o@example.com").await;
    let fan = app.register("fan@example.com").await;
    let fan2 = app.register("fan2@example.com").await;
    let id = app.create_creator(&owner, "Loop Station").await;
    let follow =
        "mutation($id: ID!) { followCreator(creatorId: $id) { followerCount viewerIsFollowing } }";
    let unfollow = "mutation($id: ID!) { unfollowCreator(creatorId: $id) { followerCount viewerIsFollowing } }";

    app.ok(Some(&fan.access_token), follow, json!({ "id": id }))
        .await;
    let twice = app
        .ok(Some(&fan.access_token), follow, json!({ "id": id }))
        .await;
    assert_eq!(
        twice["followCreator"],
        json!({ "followerCount": 1, "viewerIsFollowing": true })
    );
    let other = app
        .ok(Some(&fan2.access_token), follow, json!({ "id": id }))
        .await;
    assert_eq!(other["followCreator"]["followerCount"], 2);
    let gone = app
        .ok(Some(&fan.access_token), unfollow, json!({ "id": id }))
        .await;
    assert_eq!(
        gone["unfollowCreator"],
        json!({ "followerCount": 1, "viewerIsFollowing": false })
    );
    app.ok(Some(&fan.access_token), unfollow, json!({ "id": id }))
        .await;
    // In one request, each answer is read after its own change.
    let both = app
        .ok(
            Some(&fan.access_token),
            "mutation($id: ID!) {
              f: followCreator(creatorId: $id) { followerCount viewerIsFollowing }
              u: unfollowCreator(creatorId: $id) { followerCount viewerIsFollowing }
              g: followCreator(creatorId: $id) { followerCount viewerIsFollowing } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        both,
        json!({
            "f": { "followerCount": 2, "viewerIsFollowing": true },
            "u": { "followerCount": 1, "viewerIsFollowing": false },
            "g": { "followerCount": 2, "viewerIsFollowing": true },
        })
    );

    let missing = app
        .gql(
            Some(&fan.access_token),
            follow,
            json!({ "id": uuid::Uuid::now_v7() }),
        )
        .await;
    assert_eq!(error_code(&missing), "NOT_FOUND");
    let anonymous = app.gql(None, follow, json!({ "id": id })).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
}

fn ids(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn creators_paginate_both_ways_with_stable_cursors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("pager@example.com").await;
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(app.create_creator(&owner, &format!("Creator {i:02}")).await);
    }
    let page = "query($first: Int, $after: String, $last: Int, $before: String) {
        creators(first: $first, after: $after, last: $last, before: $before) {
            totalCount edges { cursor node { id } } nodes { id }
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut second_page_cursor = None;
    for n in 0..3 {
        let data = app
            .ok(None, page, json!({ "first": 10, "after": after }))
            .await;
        let conn = &data["creators"];
        assert_eq!(conn["totalCount"], 25);
        let page_ids = ids(conn);
        assert_eq!(page_ids.len(), if n < 2 { 10 } else { 5 });
        assert_eq!(conn["pageInfo"]["hasNextPage"], n < 2);
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], n > 0);
        if n == 1 {
            second_page_cursor = after.clone();
        }
        seen.extend(page_ids);
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "every creator once, newest first");

    // The same cursor gives the same page, even after new rows arrive in front.
    app.create_creator(&owner, "Latecomer").await;
    let again = app
        .ok(
            None,
            page,
            json!({ "first": 10, "after": second_page_cursor }),
        )
        .await;
    assert_eq!(ids(&again["creators"]), newest_first[10..20].to_vec());

    // Backward from the end.
    let data = app
        .ok(None, page, json!({ "last": 5, "before": after }))
        .await;
    assert_eq!(ids(&data["creators"]), newest_first[19..24].to_vec());
    assert_eq!(data["creators"]["pageInfo"]["hasPreviousPage"], true);

    for (vars, field) in [
        (json!({ "first": 101 }), "first"),
        (json!({ "first": -1 }), "first"),
        (json!({ "after": "bm90LWEtY3Vyc29y" }), "after"),
        (json!({ "first": 1, "last": 1 }), "last"),
        (json!({ "first": 2, "before": after }), "before"),
        (json!({ "last": 2, "after": after }), "after"),
    ] {
        let body = app.gql(None, page, vars.clone()).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{vars}");
        assert_eq!(error_field(&body), field, "{vars}");
    }

    let found = app
        .ok(
            None,
            "{ creators(search: \"creator 1\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        found["creators"]["totalCount"], 10,
        "Creator 10..19, case-insensitive"
    );
    let literal = app
        .ok(
            None,
            "{ creators(search: \"%\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        literal["creators"]["totalCount"], 0,
        "wildcards are matched literally"
    );
    // Letters beyond ASCII match in any case too (SQLite's own `lower` leaves them alone).
    app.ok(
        Some(&owner.access_token),
        "mutation { createCreator(input: {name: \"Über Ärger Studio\", slug: \"uber-studio\"}) { id } }",
        json!({}),
    )
    .await;
    // Rust's lower case is not the database's: a word-final `Σ` becomes `ς` in Rust and
    // `σ` in PostgreSQL's `lower()`, and `İ` gains a combining dot.
    for (name, slug) in [("ΟΔΟΣ Travel", "odos"), ("İstanbul Eats", "istanbul")] {
        app.ok(
            Some(&owner.access_token),
            "mutation($n: String!, $s: String) { createCreator(input: {name: $n, slug: $s}) { id } }",
            json!({ "n": name, "s": slug }),
        )
        .await;
    }
    // A name kept decomposed (NFD, as macOS names folders), from before names were composed
    // on the way in.
    let renee = app.create_creator(&owner, "Renée Bakes").await;
    {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        entity::creator::Entity::update_many()
            .col_expr(
                entity::creator::Column::Name,
                sea_orm::sea_query::Expr::val("Rene\u{301}e Bakes"),
            )
            .filter(entity::creator::Column::Id.eq(renee.parse::<uuid::Uuid>().expect("id")))
            .exec(&app.state.db)
            .await
            .expect("kept decomposed");
    }
    let count = "query($s: String) { creators(search: $s) { totalCount } }";
    for (term, expected) in [
        // Either way an accent is typed, either way it is kept.
        ("U\u{308}ber", 1),
        ("u\u{308}BER", 1),
        ("Renée", 1),
        ("Rene\u{301}e", 1),
        ("RENÉE", 1),
        ("ΟΔΟΣ", 1),
        ("οδοσ", 1),
        ("İstanbul", 1),
        ("über", 1),
        ("ÜBER ärger", 1),
        ("r Ä", 1),
        ("Über Ärger Studio", 1),
        ("*", 0),
        ("?", 0),
        ("[", 0),
        ("ubr", 0),
    ] {
        let data = app.ok(None, count, json!({ "s": term })).await;
        assert_eq!(data["creators"]["totalCount"], expected, "{term:?}");
    }
}

/// A field that fails is null in `data`, as the GraphQL spec has it, beside the fields that
/// succeeded (async-graphql left its key out, and `data` null when it was alone).
async fn a_failed_field_is_null_beside_the_fields_that_succeeded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("nulls@example.com").await;
    app.create_creator(&owner, "Present").await;
    let body = app
        .gql(None, "{ creator(slug: \"gone\") { id } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    assert_eq!(body["data"], json!({ "creator": null }), "{body}");
    let body = app
        .gql(
            Some(&owner.access_token),
            "query Page { gone: creator(slug: \"gone\") { id } here: creator(slug: \"present\") { name } me { email } }",
            json!({}),
        )
        .await;
    assert_eq!(body["errors"][0]["path"], json!(["gone"]), "{body}");
    assert_eq!(
        body["data"],
        json!({ "gone": null, "here": { "name": "Present" }, "me": { "email": "nulls@example.com" } }),
        "{body}"
    );
}

const ADD_MEMBER: &str = "mutation($c: ID!, $e: String!, $r: MemberRole) {
    addCreatorMember(creatorId: $c, email: $e, role: $r) { role user { id email } } }";
const REMOVE_MEMBER: &str =
    "mutation($c: ID!, $u: ID!) { removeCreatorMember(creatorId: $c, userId: $u) }";
const SET_ROLE: &str = "mutation($c: ID!, $u: ID!, $r: MemberRole!) {
    setCreatorMemberRole(creatorId: $c, userId: $u, role: $r) { role user { email } } }";
const TEAM: &str =
    "query($c: ID!) { creator(id: $c) { viewerCanManage members { role user { email } } } }";

/// (email, role) of a creator's team as `who` sees it; `None` when `members` is null.
async fn team(app: &TestApp, who: Option<&str>, creator: &str) -> Option<Vec<(String, String)>> {
    let data = app.ok(who, TEAM, json!({ "c": creator })).await;
    data["creator"]["members"].as_array().map(|members| {
        members
            .iter()
            .map(|m| {
                (
                    m["user"]["email"].as_str().unwrap_or_default().to_owned(),
                    m["role"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    })
}

/// Owners (and administrators) add and remove members; a member manages the creator's content
/// but not its team, and may leave; the last owner cannot be removed; only the team sees it.
async fn owners_manage_the_team_and_a_creator_keeps_an_owner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("owner@example.com").await;
    let editor = app.register("editor@example.com").await;
    let stranger = app.register("stranger@example.com").await;
    let creator = app.create_creator(&owner, "Team Kitchen").await;
    let owner_token = Some(owner.access_token.as_str());
    let editor_token = Some(editor.access_token.as_str());

    let body = app
        .gql(
            None,
            ADD_MEMBER,
            json!({ "c": creator, "e": "editor@example.com" }),
        )
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    let data = app
        .ok(
            owner_token,
            ADD_MEMBER,
            json!({ "c": creator, "e": " Editor@Example.com " }),
        )
        .await;
    assert_eq!(data["addCreatorMember"]["role"], "MEMBER");
    assert_eq!(
        data["addCreatorMember"]["user"]["id"],
        editor.user_id.as_str()
    );
    let body = app
        .gql(
            owner_token,
            ADD_MEMBER,
            json!({ "c": creator, "e": "editor@example.com" }),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    let body = app
        .gql(
            owner_token,
            ADD_MEMBER,
            json!({ "c": creator, "e": "nobody@example.com" }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "email", "{body}");

    // The editor now manages the creator's content, not its team.
    let data = app.ok(editor_token, TEAM, json!({ "c": creator })).await;
    assert_eq!(data["creator"]["viewerCanManage"], true);
    let body = app
        .gql(
            editor_token,
            ADD_MEMBER,
            json!({ "c": creator, "e": "stranger@example.com" }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let body = app
        .gql(
            editor_token,
            REMOVE_MEMBER,
            json!({ "c": creator, "u": owner.user_id }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");

    let expected = vec![
        ("owner@example.com".to_owned(), "OWNER".to_owned()),
        ("editor@example.com".to_owned(), "MEMBER".to_owned()),
    ];
    assert_eq!(
        team(&app, owner_token, &creator).await,
        Some(expected.clone())
    );
    assert_eq!(team(&app, editor_token, &creator).await, Some(expected));
    assert_eq!(
        team(&app, Some(&stranger.access_token), &creator).await,
        None
    );
    assert_eq!(team(&app, None, &creator).await, None);

    // The only owner cannot leave; with a second owner, one of two owners removing each other
    // at once succeeds, and one owner remains.
    let body = app
        .gql(
            owner_token,
            REMOVE_MEMBER,
            json!({ "c": creator, "u": owner.user_id }),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    assert_eq!(error_field(&body), "userId", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("setCreatorMemberRole")),
        "{body}"
    );
    // Nor become a member; a member changes no roles; someone not in the team is NOT_FOUND.
    async fn set_role(
        app: &TestApp,
        creator: &str,
        token: Option<&str>,
        user: &str,
        role: &str,
    ) -> Value {
        app.gql(
            token,
            SET_ROLE,
            json!({ "c": creator, "u": user, "r": role }),
        )
        .await
    }
    let body = set_role(&app, &creator, owner_token, &owner.user_id, "MEMBER").await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    assert_eq!(error_field(&body), "userId", "{body}");
    let body = set_role(&app, &creator, editor_token, &editor.user_id, "OWNER").await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let body = set_role(&app, &creator, owner_token, &stranger.user_id, "OWNER").await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    // The owner makes the editor an owner, who may then make the first owner a member (the
    // way to hand a creator over), and back.
    let body = set_role(&app, &creator, owner_token, &editor.user_id, "OWNER").await;
    assert_eq!(
        body["data"]["setCreatorMemberRole"],
        json!({ "role": "OWNER", "user": { "email": "editor@example.com" } }),
        "{body}"
    );
    let body = set_role(&app, &creator, editor_token, &owner.user_id, "MEMBER").await;
    assert_eq!(
        body["data"]["setCreatorMemberRole"]["role"], "MEMBER",
        "{body}"
    );
    assert_eq!(
        team(&app, owner_token, &creator).await,
        Some(vec![
            ("editor@example.com".to_owned(), "OWNER".to_owned()),
            ("owner@example.com".to_owned(), "MEMBER".to_owned()),
        ])
    );
    let body = set_role(&app, &creator, editor_token, &owner.user_id, "OWNER").await;
    assert_eq!(
        body["data"]["setCreatorMemberRole"]["role"], "OWNER",
        "{body}"
    );
    let body = set_role(&app, &creator, owner_token, &editor.user_id, "MEMBER").await;
    assert_eq!(
        body["data"]["setCreatorMemberRole"]["role"], "MEMBER",
        "{body}"
    );
    // Asking for the role one has changes nothing.
    let body = set_role(&app, &creator, owner_token, &editor.user_id, "MEMBER").await;
    assert_eq!(
        body["data"]["setCreatorMemberRole"]["role"], "MEMBER",
        "{body}"
    );
    let co_owner = app.register("co-owner@example.com").await;
    app.ok(
        owner_token,
        ADD_MEMBER,
        json!({ "c": creator, "e": "co-owner@example.com", "r": "OWNER" }),
    )
    .await;
    let (a, b) = tokio::join!(
        app.gql(
            owner_token,
            REMOVE_MEMBER,
            json!({ "c": creator, "u": co_owner.user_id })
        ),
        app.gql(
            Some(&co_owner.access_token),
            REMOVE_MEMBER,
            json!({ "c": creator, "u": owner.user_id })
        ),
    );
    let succeeded = [&a, &b]
        .iter()
        .filter(|body| body["data"]["removeCreatorMember"] == true)
        .count();
    assert_eq!(succeeded, 1, "{a}\n{b}");
    let (survivor, left) = if a["data"]["removeCreatorMember"] == true {
        (&owner, &co_owner)
    } else {
        (&co_owner, &owner)
    };
    let team_now = team(&app, Some(&survivor.access_token), &creator)
        .await
        .expect("team");
    let owners: Vec<_> = team_now
        .iter()
        .filter(|(_, role)| role == "OWNER")
        .collect();
    assert_eq!(owners.len(), 1, "{team_now:?}");
    assert_eq!(team(&app, Some(&left.access_token), &creator).await, None);

    // A member leaves; removing someone not in the team is NOT_FOUND.
    let data = app
        .ok(
            editor_token,
            REMOVE_MEMBER,
            json!({ "c": creator, "u": editor.user_id }),
        )
        .await;
    assert_eq!(data["removeCreatorMember"], true);
    let data = app.ok(editor_token, TEAM, json!({ "c": creator })).await;
    assert_eq!(data["creator"]["viewerCanManage"], false);
    let body = app
        .gql(
            Some(&survivor.access_token),
            REMOVE_MEMBER,
            json!({ "c": creator, "u": stranger.user_id }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
}

/// Two owners removing each other at the same moment (held at the creator's row until both
/// wait there): one succeeds, and the creator keeps an owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_removing_each_other_at_once_leave_one_owner() {
    use sea_orm::{EntityTrait, QuerySelect, TransactionTrait};

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let one = app.register("one@example.com").await;
    let two = app.register("two@example.com").await;
    let creator = app.create_creator(&one, "Two Owners").await;
    app.ok(
        Some(&one.access_token),
        ADD_MEMBER,
        json!({ "c": creator, "e": "two@example.com", "r": "OWNER" }),
    )
    .await;
    let hold = app.state.db.begin().await.expect("txn");
    entity::creator::Entity::find_by_id(creator.parse::<uuid::Uuid>().expect("uuid"))
        .lock_exclusive()
        .one(&hold)
        .await
        .expect("locked")
        .expect("creator");
    let calls = [
        app.gql_in_background(
            &one.access_token,
            REMOVE_MEMBER,
            json!({ "c": creator, "u": two.user_id }),
        ),
        app.gql_in_background(
            &two.access_token,
            REMOVE_MEMBER,
            json!({ "c": creator, "u": one.user_id }),
        ),
    ];
    crate::helpers::wait_for_lock_waits(&app, 2).await;
    hold.commit().await.expect("commit");
    let mut succeeded = 0;
    for call in calls {
        let body = call.await.expect("joined");
        if body["data"]["removeCreatorMember"] == true {
            succeeded += 1;
        }
    }
    assert_eq!(succeeded, 1);
    let owners = entity::creator_member::Entity::find()
        .all(&app.state.db)
        .await
        .expect("members");
    assert_eq!(owners.len(), 1, "{owners:?}");
}

/// `creators(following:)` lists the creators you follow (or those you do not), with the
/// paging and the nested videos of any creators page; signed out it is UNAUTHENTICATED.
async fn creators_you_follow_are_listed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("chef@example.com").await;
    let fan = app.register("fan@example.com").await;
    let mut ids = Vec::new();
    for name in ["Alpha Kitchen", "Beta Kitchen", "Gamma Kitchen"] {
        ids.push(app.create_creator(&owner, name).await);
    }
    for id in [&ids[0], &ids[2]] {
        app.ok(
            Some(&fan.access_token),
            "mutation($c: ID!) { followCreator(creatorId: $c) { id } }",
            json!({ "c": id }),
        )
        .await;
    }
    let query = "query($f: Boolean!) { creators(following: $f, first: 10) {
        totalCount nodes { id viewerIsFollowing videos(first: 2) { nodes { id } } } } }";
    let listed = |data: &Value| -> Vec<String> {
        data["creators"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| n["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let data = app
        .ok(Some(&fan.access_token), query, json!({ "f": true }))
        .await;
    let mut followed = listed(&data);
    followed.sort();
    let mut expected = vec![ids[0].clone(), ids[2].clone()];
    expected.sort();
    assert_eq!(followed, expected, "{data}");
    assert_eq!(data["creators"]["totalCount"], 2);
    let data = app
        .ok(Some(&fan.access_token), query, json!({ "f": false }))
        .await;
    assert_eq!(listed(&data), [ids[1].clone()], "{data}");
    assert_eq!(data["creators"]["totalCount"], 1);
    // Someone who follows nobody.
    let data = app
        .ok(Some(&owner.access_token), query, json!({ "f": true }))
        .await;
    assert_eq!(data["creators"]["totalCount"], 0, "{data}");
    let body = app.gql(None, query, json!({ "f": true })).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
}

/// What a request read before a mutation is read again after it: later operations of a batch
/// (Apollo's BatchHttpLink sends a mutation and its refetches together) and later root fields
/// of the same mutation see the change, not what the loaders or the caller's memberships held.
async fn reads_after_a_mutation_in_one_request_see_its_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("batched-owner@example.com").await;
    let creator = app.create_creator(&owner, "Batched").await;
    let video = crate::helpers::insert_video(
        &app,
        &creator,
        "before",
        entity::VideoStatus::Ready,
        Some(60.0),
    )
    .await;
    let batch = |operations: Value| {
        let app = &app;
        let token = owner.access_token.clone();
        async move {
            app.client
                .post(format!("{}/graphql", app.base))
                .bearer_auth(token)
                .json(&operations)
                .send()
                .await
                .expect("sent")
                .json::<Value>()
                .await
                .expect("JSON")
        }
    };
    let read = json!({ "query": "query($id: ID!) { video(id: $id) { title creator { name } } }",
                       "variables": { "id": video } });
    let answers = batch(json!([
        read,
        { "query": "mutation($id: ID!) { updateVideo(id: $id, input: {title: \"after\"}) { title } }",
          "variables": { "id": video } },
        { "query": "mutation($id: ID!) { updateCreator(id: $id, input: {name: \"Renamed\"}) { name } }",
          "variables": { "id": creator } },
        read,
        { "query": "mutation($id: ID!) { deleteVideo(id: $id) }", "variables": { "id": video } },
        read,
    ]))
    .await;
    assert_eq!(answers[0]["data"]["video"]["title"], "before", "{answers}");
    assert_eq!(
        answers[3]["data"]["video"],
        json!({ "title": "after", "creator": { "name": "Renamed" } }),
        "{answers}"
    );
    assert!(answers[5]["data"]["video"].is_null(), "{answers}");

    // Memberships: a creator made by the first root field is the caller's in the second, and
    // one they leave in a batch is not theirs in the next operation.
    let data = app
        .ok(
            Some(&owner.access_token),
            "mutation {
              a: createCreator(input: {name: \"Nova A\"}) { viewerCanManage }
              b: createCreator(input: {name: \"Nova B\"}) { viewerCanManage members { role } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["a"]["viewerCanManage"], true, "{data}");
    assert_eq!(
        data["b"],
        json!({ "viewerCanManage": true, "members": [{ "role": "OWNER" }] }),
        "{data}"
    );
    let mate = app.register("batched-mate@example.com").await;
    app.ok(
        Some(&owner.access_token),
        "mutation($c: ID!) { addCreatorMember(creatorId: $c, email: \"batched-mate@example.com\") { role } }",
        json!({ "c": creator }),
    )
    .await;
    let team = json!({ "query": "query($id: ID!) { creator(id: $id) { viewerCanManage members { role } } }",
                       "variables": { "id": creator } });
    let answers = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&mate.access_token)
        .json(&json!([
            team,
            { "query": "mutation($c: ID!, $u: ID!) { removeCreatorMember(creatorId: $c, userId: $u) }",
              "variables": { "c": creator, "u": mate.user_id } },
            team,
        ]))
        .send()
        .await
        .expect("sent")
        .json::<Value>()
        .await
        .expect("JSON");
    assert_eq!(
        answers[0]["data"]["creator"]["viewerCanManage"], true,
        "{answers}"
    );
    assert_eq!(
        answers[2]["data"]["creator"],
        json!({ "viewerCanManage": false, "members": null }),
        "{answers}"
    );
}

/// A teammate's `creators` lists the teams the reader shares with them, not their other
/// teams; the user themself and administrators read them all.
async fn a_teammates_other_teams_are_theirs(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let ada = app.register("ada-teams@example.com").await;
    let bea = app.register("bea-teams@example.com").await;
    let shared = app.create_creator(&ada, "Shared Team").await;
    app.create_creator(&bea, "Bea Alone").await;
    app.ok(
        Some(&ada.access_token),
        "mutation($c: ID!) { addCreatorMember(creatorId: $c, email: \"bea-teams@example.com\") { role } }",
        json!({ "c": shared }),
    )
    .await;
    let read =
        "query($c: ID!) { creator(id: $c) { members { user { email creators { name } } } } }";
    let teams_of_bea = |data: &Value| {
        let mut names: Vec<String> = data["creator"]["members"]
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["user"]["email"] == "bea-teams@example.com")
            .expect("bea")["user"]["creators"]
            .as_array()
            .expect("creators")
            .iter()
            .map(|c| c["name"].as_str().expect("name").to_owned())
            .collect();
        names.sort();
        names
    };
    let by_ada = app
        .ok(Some(&ada.access_token), read, json!({ "c": shared }))
        .await;
    assert_eq!(teams_of_bea(&by_ada), ["Shared Team"]);
    let admin = app.admin("teams-admin@example.com").await;
    for reader in [&bea, &admin] {
        let data = app
            .ok(Some(&reader.access_token), read, json!({ "c": shared }))
            .await;
        assert_eq!(teams_of_bea(&data), ["Bea Alone", "Shared Team"]);
    }
}

/// `addCreatorMember` tells whether an email has an account, so an owner may try 60 additions
/// an hour; past that, RATE_LIMITED (and nothing is looked up). Other owners, and
/// administrators, are not held up by it.
async fn additions_to_teams_are_limited_per_owner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("prober@example.com").await;
    let creator = app.create_creator(&owner, "Probe Team").await;
    const ADD: &str =
        "mutation($c: ID!, $e: String!) { addCreatorMember(creatorId: $c, email: $e) { role } }";
    for i in 0..60 {
        let body = app
            .gql(
                Some(&owner.access_token),
                ADD,
                json!({ "c": creator, "e": format!("nobody{i}@example.com") }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{i}: {body}");
    }
    let body = app
        .gql(
            Some(&owner.access_token),
            ADD,
            json!({ "c": creator, "e": "nobody-else@example.com" }),
        )
        .await;
    assert_eq!(error_code(&body), "RATE_LIMITED", "{body}");
    let other = app.register("other-owner@example.com").await;
    let theirs = app.create_creator(&other, "Other Team").await;
    let body = app
        .gql(
            Some(&other.access_token),
            ADD,
            json!({ "c": theirs, "e": "nobody0@example.com" }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    let admin = app.admin("team-admin@example.com").await;
    let data = app
        .ok(
            Some(&admin.access_token),
            ADD,
            json!({ "c": creator, "e": "other-owner@example.com" }),
        )
        .await;
    assert_eq!(data["addCreatorMember"]["role"], "MEMBER");
}

both_backends!(
    additions_to_teams_are_limited_per_owner,
    a_teammates_other_teams_are_theirs,
    reads_after_a_mutation_in_one_request_see_its_changes,
    a_failed_field_is_null_beside_the_fields_that_succeeded,
    a_personality_profile_is_public_and_checked,
    creating_a_creator_makes_the_caller_its_owner,
    duplicate_names_and_slugs_conflict_and_bad_input_names_the_field,
    only_members_and_admins_update_a_creator,
    following_is_idempotent_and_counted,
    creators_paginate_both_ways_with_stable_cursors,
    owners_manage_the_team_and_a_creator_keeps_an_owner,
    creators_you_follow_are_listed,
    teams_under_a_page_of_creators_are_read_in_one_batch,
);

/// `members` under a page of creators is one statement for the page, not one per creator; in
/// the request that changes a team, a later `members` sees the change.
async fn teams_under_a_page_of_creators_are_read_in_one_batch(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let admin = app.admin("teams-admin@example.com").await;
    let owner = app.register("teams-owner@example.com").await;
    app.register("teams-member@example.com").await;
    for i in 0..6 {
        app.create_creator(&owner, &format!("Team {i}")).await;
    }
    let page = |n: i64| {
        let (app, admin) = (&app, &admin);
        async move {
            let before = app.request_statements();
            let data = app
                .ok(
                    Some(&admin.access_token),
                    "query($n: Int!) { creators(first: $n) { nodes { members { role user { email } } } } }",
                    json!({ "n": n }),
                )
                .await;
            (app.request_statements() - before, data)
        }
    };
    let (one, _) = page(1).await;
    let (six, data) = page(6).await;
    let nodes = data["creators"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 6);
    assert!(
        nodes
            .iter()
            .all(|c| c["members"][0]["user"]["email"] == "teams-owner@example.com"),
        "{data}"
    );
    assert_eq!(six, one, "six teams cost {six} statements, one cost {one}");

    // One request: read the team, add to it, read it again.
    let id = app
        .ok(None, "{ creators(first: 1) { nodes { id } } }", json!({}))
        .await["creators"]["nodes"][0]["id"]
        .clone();
    let data = app
        .ok(
            Some(&owner.access_token),
            "mutation($c: ID!) {
                before: updateCreator(id: $c, input: {}) { members { user { email } } }
                addCreatorMember(creatorId: $c, email: \"teams-member@example.com\") { role }
                after: updateCreator(id: $c, input: {}) { members { user { email } } } }",
            json!({ "c": id }),
        )
        .await;
    assert_eq!(data["before"]["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        data["after"]["members"].as_array().map(Vec::len),
        Some(2),
        "{data}"
    );
}
