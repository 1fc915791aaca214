// Checks the committed schema.graphql the way typed-client generators read it, and against
// what the running server serves, with graphql-js (what graphql-codegen, Apollo and Relay
// build on): `node schema-check.mjs <http-url> <schema.graphql>`. Prints one JSON line:
// the SDL's validation errors, and the breaking and dangerous changes between the SDL and the
// server's introspection, in both directions (each should be empty).
// The Rust test `the_committed_sdl_is_what_graphql_js_reads_from_the_server`
// (tests/api/schema.rs) drives it.
import { readFileSync } from 'node:fs';
import {
  buildClientSchema,
  buildSchema,
  findBreakingChanges,
  findDangerousChanges,
  getIntrospectionQuery,
  validateSchema,
} from 'graphql';

const [url, path] = process.argv.slice(2);
if (!url || !path) {
  console.error('usage: node schema-check.mjs <http-url> <schema.graphql>');
  process.exit(2);
}

const committed = buildSchema(readFileSync(path, 'utf8'));
const query = getIntrospectionQuery({
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
  oneOf: true,
});
const response = await fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ query }),
});
const body = await response.json();
if (!body.data) {
  console.log(JSON.stringify({ introspectionErrors: body.errors ?? body }));
  process.exit(0);
}
const served = buildClientSchema(body.data);

// Built-in directives differ between graphql-js releases (e.g. where @deprecated may go);
// they are the library's, not the schema's.
const builtIn = /^(DIRECTIVE_)?.*\b(deprecated|include|skip|specifiedBy|oneOf)\b/;
const changes = (find) =>
  [...find(committed, served), ...find(served, committed)]
    .filter((c) => !(c.type.startsWith('DIRECTIVE_') && builtIn.test(c.description)))
    .map((c) => `${c.type}: ${c.description}`);

console.log(
  JSON.stringify({
    schemaErrors: validateSchema(committed).map(String),
    breaking: changes(findBreakingChanges),
    dangerous: changes(findDangerousChanges),
    oneOf: [committed.getType('LayerInput')?.isOneOf, served.getType('LayerInput')?.isOneOf],
    types: Object.keys(served.getTypeMap()).length,
  }),
);
