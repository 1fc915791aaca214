// Runs operations against a Reelgraph server with the real `graphql-ws` client and prints what
// it saw as one JSON line: `node ws-query.mjs <ws-url> [access-token]`.
// The Rust test `the_graphql_ws_npm_client_runs_a_query_and_sees_validation_errors` (tests/api/websocket.rs) drives it.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token] = process.argv.slice(2);
if (!url) {
  console.error('usage: node ws-query.mjs <ws-url> [access-token]');
  process.exit(2);
}

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: token ? { authorization: `Bearer ${token}` } : {},
  retryAttempts: 0,
  lazy: true,
});

// Resolves with every `next` payload, or with the errors of an `error` message.
function run(payload) {
  return new Promise((resolve) => {
    const results = [];
    client.subscribe(payload, {
      next: (result) => results.push(result),
      error: (errors) => resolve({ results, errors }),
      complete: () => resolve({ results, completed: true }),
    });
  });
}

const timer = setTimeout(() => {
  console.error('timed out');
  process.exit(1);
}, 10_000);

try {
  const query = await run({ query: '{ me { email } }' });
  const invalid = await run({ query: '{ nope }' });
  console.log(JSON.stringify({ query, invalid }));
} finally {
  clearTimeout(timer);
  await client.dispose();
}
