// Talks to a running Reelgraph over HTTP with Apollo Client and its automatic persisted
// queries (`PersistedQueryLink`, hashed queries sent by GET), and prints what it saw as one
// JSON line: `node apollo.mjs <http-url-of-/graphql> [access-token]`.
// The Rust test `apollo_client_runs_queries_by_hash_over_get` (tests/api/over_http.rs) drives it.
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { createHash } from 'node:crypto';

const [url, token] = process.argv.slice(2);
if (!url) {
  console.error('usage: node apollo.mjs <http-url> [access-token]');
  process.exit(2);
}

// Every HTTP request Apollo makes: its method, whether it carried the query text or only a
// hash, and the status it got.
const requests = [];
async function recordingFetch(uri, options) {
  const target = new URL(uri);
  const body = typeof options.body === 'string' ? JSON.parse(options.body) : {};
  const extensions = target.searchParams.get('extensions');
  const response = await fetch(uri, options);
  requests.push({
    method: options.method ?? 'GET',
    query: Boolean(target.searchParams.get('query') || body.query),
    hash: Boolean(body.extensions?.persistedQuery || extensions?.includes('persistedQuery')),
    status: response.status,
  });
  return response;
}

const sha256 = (text) => createHash('sha256').update(text).digest('hex');
const client = new ApolloClient({
  link: new PersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(
    new HttpLink({
      uri: url,
      fetch: recordingFetch,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    }),
  ),
  cache: new InMemoryCache(),
});

const timer = setTimeout(() => {
  console.error('timed out');
  process.exit(1);
}, 20_000);

// Runs a query and returns its data and errors with the requests it took.
async function run(query, options = {}) {
  const result = await client.query({ query, fetchPolicy: 'network-only', ...options });
  const errors = result.error?.errors?.map((e) => ({ message: e.message, code: e.extensions?.code }));
  return { data: result.data ?? null, errors: errors ?? null, requests: requests.splice(0) };
}

const CREATORS = gql`
  query Creators($first: Int) {
    creators(first: $first) {
      totalCount
      nodes { id name }
    }
    me { id email }
  }
`;
// One field fails; the rest of the answer is kept (`errorPolicy: 'all'`), with `null` where
// the failed field was, as Apollo's normalised cache needs.
const PARTLY = gql`
  query Partly {
    creators(first: 1) { totalCount }
    video(id: "not-a-uuid") { id title }
  }
`;

// A document that does not validate: a request error, answered 400 to a client that
// accepts application/graphql-response+json (Apollo does), with the errors in the body.
const INVALID = gql`
  query Invalid {
    creators(first: 1) { totalCount noSuchField }
  }
`;

try {
  const first = await run(CREATORS, { variables: { first: 5 } });
  const again = await run(CREATORS, { variables: { first: 5 } });
  const partly = await run(PARTLY, { errorPolicy: 'all' });
  const partlyAgain = await run(PARTLY, { errorPolicy: 'all' });
  const invalid = await run(INVALID, { errorPolicy: 'all' });
  console.log(JSON.stringify({ first, again, partly, partlyAgain, invalid }));
} finally {
  clearTimeout(timer);
  client.stop();
}
