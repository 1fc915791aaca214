-- Read-path benchmark dataset, generated inside PostgreSQL (no client round trips).
--
--   psql -v ON_ERROR_STOP=1 -v creators=200 -v videos_per_creator=100 -v moments_per_video=5 \
--        -v segments_per_video=12 -v viewers=5000 -f seed.sql postgres://…/db
--
-- Runs on a freshly migrated database. Everything is public (videos READY, not deleted, consent
-- allowing public display), so Reelgraph's visibility rules and PostGraphile's plain table
-- access return the same rows. Ids are UUIDv7: 48 bits of the row's creation time in
-- milliseconds, then random bits, so ordering by id is ordering by creation, as Reelgraph
-- assumes. `setseed` and a fixed anchor time make the dataset the same on every run.

\set ON_ERROR_STOP 1
\timing off
SET client_min_messages = warning;
SET synchronous_commit = off;

SELECT setseed(0.4242);

-- UUIDv7 of a timestamp: 12 hex digits of Unix milliseconds, version 7, 12 random bits, the
-- RFC 4122 variant (8–b), 62 random bits.
CREATE FUNCTION pg_temp.uuid7(ts timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS $$
  SELECT (lpad(to_hex(floor(extract(epoch FROM ts) * 1000)::bigint), 12, '0')
          || '7' || substr(r, 1, 3)
          || substr('89ab', 1 + floor(random() * 4)::int, 1)
          || substr(r, 4, 15))::uuid
  FROM (SELECT md5(random()::text) AS r) AS s
$$;

-- A few words, picked at random, for titles and text.
CREATE FUNCTION pg_temp.words(n int) RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT string_agg(w[1 + floor(random() * array_length(w, 1))::int], ' ')
  FROM generate_series(1, n),
       (SELECT ARRAY['color', 'grading', 'timeline', 'render', 'camera', 'lens', 'audio', 'mix',
                     'workflow', 'lighting', 'studio', 'edit', 'cut', 'transition', 'shot',
                     'story', 'interview', 'tutorial', 'review', 'keyframe', 'motion', 'title',
                     'export', 'proxy', 'codec', 'frame', 'scene', 'script', 'drone', 'gimbal',
                     'vlog', 'podcast', 'setup', 'tips', 'mistakes', 'beginner', 'advanced',
                     'fast', 'cinematic', 'budget'] AS w) AS vocab
$$;

-- ---- users: one owner per creator, then the viewers who follow them ------------------------
CREATE TEMP TABLE t_users AS
SELECT n,
       pg_temp.uuid7(ts) AS id,
       ts,
       n <= :creators AS is_owner
FROM generate_series(1, :creators + :viewers) AS n,
     LATERAL (SELECT timestamptz '2024-01-01 00:00:00+00' + n * interval '37 minutes'
                     + random() * interval '30 minutes' AS ts) AS t;

INSERT INTO users (id, email, password_hash, display_name, role, is_active, is_verified, credits,
                   created_at, updated_at)
SELECT id,
       format('user%s@bench.example', n),
       -- Not a usable hash: nobody signs in during the benchmark.
       '$argon2id$v=19$m=19456,t=2,p=1$YmVuY2hzYWx0$benchmarkbenchmarkbenchmarkbenchmark',
       format('User %s', n),
       CASE WHEN is_owner THEN 'CREATOR' ELSE 'VIEWER' END,
       true, true, 0, ts, ts
FROM t_users;

-- ---- creators ------------------------------------------------------------------------------
CREATE TEMP TABLE t_creators AS
SELECT u.n,
       pg_temp.uuid7(u.ts + interval '1 hour') AS id,
       u.id AS owner_id,
       u.ts + interval '1 hour' AS ts
FROM t_users AS u
WHERE u.is_owner;

INSERT INTO creators (id, name, slug, genres, bio, social_links, featured, created_at, updated_at)
SELECT id,
       format('Creator %s %s', n, initcap(pg_temp.words(2))),
       format('creator-%s', n),
       jsonb_build_array(pg_temp.words(1), pg_temp.words(1)),
       'Videos about ' || pg_temp.words(8),
       jsonb_build_object('youtube', format('https://youtube.example/@creator%s', n)),
       n % 10 = 0,
       ts, ts
FROM t_creators;

INSERT INTO creator_members (id, creator_id, user_id, role, created_at)
SELECT pg_temp.uuid7(ts), id, owner_id, 'OWNER', ts
FROM t_creators;

-- ---- follows: every viewer follows a few creators, popular ones more often ------------------
INSERT INTO creator_follows (id, user_id, creator_id, created_at)
SELECT pg_temp.uuid7(pick.ts), pick.user_id, c.id, pick.ts
FROM (
    SELECT u.id AS user_id,
           u.ts + k * interval '1 day' AS ts,
           1 + floor(power(random(), 2) * :creators)::int AS creator_n
    FROM t_users AS u,
         LATERAL generate_series(1, 1 + (u.n % 16)) AS k
    WHERE NOT u.is_owner
) AS pick
JOIN t_creators AS c ON c.n = pick.creator_n
ON CONFLICT (user_id, creator_id) DO NOTHING;

-- ---- videos: spread over one year, interleaved across creators ------------------------------
CREATE TEMP TABLE t_videos AS
SELECT creator_id, owner_id, ts, pg_temp.uuid7(ts) AS id, duration
FROM (
    -- Volatile expressions in the select list keep this subquery from being flattened, so
    -- each row draws its own time once and its id is made from that same time.
    SELECT c.id AS creator_id,
           c.owner_id,
           timestamptz '2025-06-01 00:00:00+00' + random() * interval '365 days' AS ts,
           600 + floor(random() * 3000)::int AS duration
    FROM t_creators AS c
    CROSS JOIN generate_series(1, :videos_per_creator)
) AS v;

INSERT INTO videos (id, creator_id, uploaded_by, title, original_filename, mime, size_bytes,
                    sha256, storage_key, duration_secs, width, height, status, pipeline_stage,
                    created_at, updated_at)
SELECT id, creator_id, owner_id,
       initcap(pg_temp.words(3 + floor(random() * 5)::int)),
       'upload.mp4',
       'video/mp4',
       duration::bigint * 600000,
       md5(id::text) || md5(creator_id::text),
       format('creators/%s/videos/%s/original', creator_id, id),
       duration, 1920, 1080,
       'READY', 4,
       ts, ts
FROM t_videos;

-- Consent rows for half of the videos, all allowing public display (the default).
INSERT INTO video_consents (id, video_id, creator_id, kb_inclusion, training_usage,
                            public_display, version, created_at, updated_at)
SELECT pg_temp.uuid7(ts + interval '5 minutes'), id, creator_id, random() < 0.5, false, true, 1,
       ts + interval '5 minutes', ts + interval '5 minutes'
FROM t_videos
WHERE get_byte(uuid_send(id), 15) % 2 = 0;

-- ---- transcript segments --------------------------------------------------------------------
INSERT INTO transcript_segments (id, video_id, start_time, end_time, text, speaker, created_at)
SELECT pg_temp.uuid7(v.ts + interval '10 minutes' + k * interval '1 millisecond'),
       v.id,
       k * (v.duration::float8 / :segments_per_video),
       (k + 1) * (v.duration::float8 / :segments_per_video),
       pg_temp.words(12 + floor(random() * 20)::int),
       CASE WHEN k % 3 = 0 THEN 'host' ELSE 'guest' END,
       v.ts + interval '10 minutes'
FROM t_videos AS v,
     LATERAL generate_series(0, :segments_per_video - 1) AS k;

-- ---- key moments, and one scored highlight per key moment ----------------------------------
CREATE TEMP TABLE t_moments AS
SELECT v.id AS video_id,
       v.ts + interval '20 minutes' + k * interval '1 millisecond' AS ts,
       pg_temp.uuid7(v.ts + interval '20 minutes' + k * interval '1 millisecond') AS id,
       k,
       (k + 0.5) * (v.duration::float8 / (:moments_per_video + 1)) AS start_time,
       20 + floor(random() * 70)::int AS length
FROM t_videos AS v,
     LATERAL generate_series(0, :moments_per_video - 1) AS k;

INSERT INTO key_moments (id, video_id, title, summary, start_time, end_time, topic_category,
                         topic_tags, content_type, review_status, sort_order, created_at,
                         updated_at)
SELECT id, video_id,
       initcap(pg_temp.words(2 + floor(random() * 4)::int)),
       'How to ' || pg_temp.words(10),
       start_time, start_time + length,
       pg_temp.words(1),
       jsonb_build_array(pg_temp.words(1), pg_temp.words(1)),
       (ARRAY['TECHNIQUE', 'CONCEPT', 'WORKFLOW', 'REFERENCE'])[1 + (k % 4)],
       'APPROVED',
       k,
       ts, ts
FROM t_moments;

-- Scores have three decimals, so many highlights share a score and the id tie-break matters.
INSERT INTO highlights (id, key_moment_id, video_id, score, score_breakdown, duration_secs,
                        status, created_at, updated_at)
SELECT pg_temp.uuid7(ts + interval '1 hour'), id, video_id,
       round(random()::numeric, 3)::float8,
       jsonb_build_object('shortFormFit', round(random()::numeric, 2),
                          'hook', round(random()::numeric, 2),
                          'transcriptDensity', round(random()::numeric, 2)),
       length,
       (ARRAY['CANDIDATE', 'APPROVED', 'REJECTED'])[1 + floor(random() * 3)::int],
       ts + interval '1 hour', ts + interval '1 hour'
FROM t_moments;

-- Fresh statistics and an all-visible map (index-only scans), as on a settled production table.
VACUUM (ANALYZE) users, creators, creator_members, creator_follows, videos, video_consents,
                 transcript_segments, key_moments, highlights;

SELECT 'creators' AS "table", count(*) AS "rows" FROM creators
UNION ALL SELECT 'users', count(*) FROM users
UNION ALL SELECT 'creator_follows', count(*) FROM creator_follows
UNION ALL SELECT 'videos', count(*) FROM videos
UNION ALL SELECT 'video_consents', count(*) FROM video_consents
UNION ALL SELECT 'transcript_segments', count(*) FROM transcript_segments
UNION ALL SELECT 'key_moments', count(*) FROM key_moments
UNION ALL SELECT 'highlights', count(*) FROM highlights;
