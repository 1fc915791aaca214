// Runs graphql-http's GraphQL-over-HTTP audits against a running Reelgraph and prints every
// audit's id, status and reason as one JSON line: `node http-audit.mjs <http-url-of-/graphql>`.
// The Rust test `the_graphql_over_http_audits_pass` (tests/api/over_http.rs) drives it.
import { auditServer } from 'graphql-http';

const [url] = process.argv.slice(2);
if (!url) {
  console.error('usage: node http-audit.mjs <http-url>');
  process.exit(2);
}
const results = await auditServer({ url });
console.log(
  JSON.stringify(
    results.map(({ id, name, status, reason }) => ({ id, name, status, reason: reason ?? null })),
  ),
);
