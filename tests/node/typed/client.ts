// A typed client, generated from the committed schema.graphql by graphql-codegen's client
// preset (the generator most TypeScript SPAs use) and type-checked by tsc in strict mode, then
// run against a live server: `node dist/client.js <http-url>` prints one JSON line.
// The Rust test `a_typed_client_generated_from_the_committed_schema_compiles_and_runs`
// (tests/api/schema.rs) generates, compiles and runs it.
//
// The `@ts-expect-error` lines are part of the check: each must be a type error, so tsc fails
// ("unused directive") if the generated types ever degrade to `any`.
import { print } from 'graphql';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { graphql } from './gql/index.js';
import type { JobStatus, UserRole } from './gql/graphql.js';

const url = process.argv[2];
if (!url) {
  console.error('usage: node dist/client.js <http-url>');
  process.exit(2);
}

interface GraphQLError {
  message: string;
  extensions?: { code?: string; field?: string };
}

async function run<R, V>(
  document: TypedDocumentNode<R, V>,
  variables: V,
  token?: string,
): Promise<{ data?: R | null; errors?: GraphQLError[] }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url!, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query: print(document), variables }),
  });
  return (await response.json()) as { data?: R | null; errors?: GraphQLError[] };
}

async function ok<R, V>(document: TypedDocumentNode<R, V>, variables: V, token?: string): Promise<R> {
  const { data, errors } = await run(document, variables, token);
  if (errors?.length || !data) throw new Error(JSON.stringify(errors));
  return data;
}

const Register = graphql(`
  mutation TypedRegister($input: RegisterInput!) {
    register(input: $input) { accessToken user { id email role } }
  }
`);
const Me = graphql(`
  query TypedMe { me { id email role displayName createdAt } }
`);
const CreateCreator = graphql(`
  mutation TypedCreateCreator($input: CreateCreatorInput!) {
    createCreator(input: $input) { id name slug genres socialLinks }
  }
`);
const RenderMovie = graphql(`
  mutation TypedRenderMovie($input: RenderMovieInput!) {
    renderMovie(input: $input) { id kind status priority }
  }
`);
const JobById = graphql(`
  query TypedJob($id: ID!) { job(id: $id) { id status progress cached children(first: 5) { totalCount } } }
`);
const Creators = graphql(`
  query TypedCreators($first: Int, $search: String) {
    creators(first: $first, search: $search) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { id name videos(first: 3) { nodes { id title durationSecs } } }
    }
  }
`);
// Subscriptions are typed the same way (graphql-ws runs them in tests/node/ws-query.mjs).
const JobUpdated = graphql(`
  subscription TypedJobUpdated($id: ID!) { jobUpdated(id: $id) { id status progress } }
`);

const email = `typed-${Date.now()}@example.com`;
const registered = await ok(Register, {
  input: { email, password: 'correct horse battery', displayName: 'Typed Client' },
});
const token: string = registered.register.accessToken;
const roleBefore: UserRole = registered.register.user.role;

const creator = (
  await ok(
    CreateCreator,
    { input: { name: 'Typed Creator', genres: ['dubstep'], socialLinks: { youtube: 'https://youtube.com/@typed' } } },
    token,
  )
).createCreator;
const me = (await ok(Me, {}, token)).me;
const roleAfter: UserRole | undefined = me?.role;

const job = (
  await ok(
    RenderMovie,
    {
      input: {
        creatorId: creator.id,
        priority: 'HIGH',
        spec: {
          width: 320,
          height: 180,
          fps: 24,
          scenes: [
            { id: 'intro', duration: 1, bgColor: '#102030', layers: [{ text: { text: 'Typed', fontSize: 32 } }] },
          ],
        },
      },
    },
    token,
  )
).renderMovie;
const status: JobStatus | undefined = (await ok(JobById, { id: job.id }, token)).job?.status;
const page = (await ok(Creators, { first: 5, search: 'Typed' })).creators;

// Bad input comes back as a typed failure, with the field path.
const refused = await run(
  RenderMovie,
  { input: { spec: { width: 320, height: 180, fps: 24, scenes: [{ id: 'x', duration: -1, bgColor: '#000000' }] } } },
  token,
);

// Type-level checks: each line below must not compile.
// @ts-expect-error `me` has no `password` field
void me?.password;
// @ts-expect-error `role` is an enum, not any string
const notARole: UserRole = 'OWNER';
// @ts-expect-error `spec` is required
void (() => run(RenderMovie, { input: { priority: 'LOW' } }, token));
// @ts-expect-error a @oneOf layer takes one of `text` or `image`, not both
void (() => run(RenderMovie, { input: { spec: { width: 1, height: 1, fps: 1, scenes: [{ id: 'a', duration: 1, bgColor: '#000000', layers: [{ text: { text: 'a' }, image: { assetKey: 'k' } }] }] } } }, token));
// @ts-expect-error the subscription's `id` variable is required
void (() => run(JobUpdated, {}));
void notARole;

console.log(
  JSON.stringify({
    roleBefore,
    roleAfter,
    creator,
    job: { kind: job.kind, status: job.status, priority: job.priority },
    statusNow: status,
    page: { totalCount: page.totalCount, names: page.nodes.map((c) => c.name) },
    refused: refused.errors?.map((e) => ({ code: e.extensions?.code, field: e.extensions?.field })),
    refusedData: refused.data ?? null,
  }),
);
