// The benchmark's queries, each written once per server's schema, with a function that turns
// each server's answer into one canonical shape. Equivalence is checked on that shape: same ids
// in the same order, same titles, names, scores and counts.
//
// Reelgraph orders every list by its UUIDv7 id, newest first, and `highlights` by score (best
// first) then id; the PostGraphile queries ask for the same orders explicitly (its default is
// the table's natural order). PostGraphile 5's `amber` preset names a table's primary key
// `rowId` (`id` is its global Node ID) and relations `xByYId`.

/** Times as milliseconds: the servers print the same instant in different formats. */
const instant = (s) => (s == null ? null : new Date(s).toISOString());

export const queries = [
  {
    name: "video",
    title: "Q1 · one video by id (with its creator)",
    // Variables are drawn from this sample list; the load rotates through them.
    sample: "videos",
    reelgraph: {
      query: `query Q1($id: ID!) {
  video(id: $id) { id title durationSecs status createdAt creator { id name } }
}`,
      canonical: (d) => {
        const v = d.video;
        return {
          id: v.id,
          title: v.title,
          durationSecs: v.durationSecs,
          status: v.status,
          createdAt: instant(v.createdAt),
          creator: { id: v.creator.id, name: v.creator.name },
        };
      },
    },
    postgraphile: {
      query: `query Q1($id: UUID!) {
  videoByRowId(rowId: $id) { rowId title durationSecs status createdAt creatorByCreatorId { rowId name } }
}`,
      canonical: (d) => {
        const v = d.videoByRowId;
        return {
          id: v.rowId,
          title: v.title,
          durationSecs: v.durationSecs,
          status: v.status,
          createdAt: instant(v.createdAt),
          creator: { id: v.creatorByCreatorId.rowId, name: v.creatorByCreatorId.name },
        };
      },
    },
  },
  {
    name: "creators",
    title: "Q2 · 20 creators with their 10 latest videos each",
    sample: null,
    reelgraph: {
      query: `query Q2 {
  creators(first: 20) { nodes { id name videos(first: 10) { nodes { id title } } } }
}`,
      canonical: (d) =>
        d.creators.nodes.map((c) => ({
          id: c.id,
          name: c.name,
          videos: c.videos.nodes.map((v) => ({ id: v.id, title: v.title })),
        })),
    },
    postgraphile: {
      query: `query Q2 {
  allCreators(first: 20, orderBy: [ROW_ID_DESC]) {
    nodes { rowId name videosByCreatorId(first: 10, orderBy: [ROW_ID_DESC]) { nodes { rowId title } } }
  }
}`,
      canonical: (d) =>
        d.allCreators.nodes.map((c) => ({
          id: c.rowId,
          name: c.name,
          videos: c.videosByCreatorId.nodes.map((v) => ({ id: v.rowId, title: v.title })),
        })),
    },
  },
  {
    name: "highlights",
    title: "Q3 · 50 top-scored highlights with video, creator and key moment",
    sample: null,
    reelgraph: {
      query: `query Q3 {
  highlights(first: 50) {
    nodes { id score video { id title creator { id name } } keyMoment { id title } }
  }
}`,
      canonical: (d) =>
        d.highlights.nodes.map((h) => ({
          id: h.id,
          score: h.score,
          video: { id: h.video.id, title: h.video.title },
          creator: { id: h.video.creator.id, name: h.video.creator.name },
          keyMoment: { id: h.keyMoment.id, title: h.keyMoment.title },
        })),
    },
    postgraphile: {
      query: `query Q3 {
  allHighlights(first: 50, orderBy: [SCORE_DESC, ROW_ID_ASC]) {
    nodes {
      rowId score
      videoByVideoId { rowId title creatorByCreatorId { rowId name } }
      keyMomentByKeyMomentId { rowId title }
    }
  }
}`,
      canonical: (d) =>
        d.allHighlights.nodes.map((h) => ({
          id: h.rowId,
          score: h.score,
          video: { id: h.videoByVideoId.rowId, title: h.videoByVideoId.title },
          creator: {
            id: h.videoByVideoId.creatorByCreatorId.rowId,
            name: h.videoByVideoId.creatorByCreatorId.name,
          },
          keyMoment: { id: h.keyMomentByKeyMomentId.rowId, title: h.keyMomentByKeyMomentId.title },
        })),
    },
  },
  {
    name: "creator_page",
    title: "Q4 · creator page: follower count, 20 videos with highlight counts",
    sample: "creators",
    reelgraph: {
      query: `query Q4($id: ID!) {
  creator(id: $id) { id name followerCount videos(first: 20) { nodes { id title highlightCount } } }
}`,
      canonical: (d) => {
        const c = d.creator;
        return {
          id: c.id,
          name: c.name,
          followers: c.followerCount,
          videos: c.videos.nodes.map((v) => ({
            id: v.id,
            title: v.title,
            highlights: v.highlightCount,
          })),
        };
      },
    },
    postgraphile: {
      query: `query Q4($id: UUID!) {
  creatorByRowId(rowId: $id) {
    rowId name
    creatorFollowsByCreatorId { totalCount }
    videosByCreatorId(first: 20, orderBy: [ROW_ID_DESC]) {
      nodes { rowId title highlightsByVideoId { totalCount } }
    }
  }
}`,
      canonical: (d) => {
        const c = d.creatorByRowId;
        return {
          id: c.rowId,
          name: c.name,
          followers: c.creatorFollowsByCreatorId.totalCount,
          videos: c.videosByCreatorId.nodes.map((v) => ({
            id: v.rowId,
            title: v.title,
            highlights: v.highlightsByVideoId.totalCount,
          })),
        };
      },
    },
  },
];

/** SQL that draws each sample list of ids (deterministic: ordered by a hash of the id). */
export const samples = {
  videos: "SELECT id::text FROM videos ORDER BY md5(id::text) LIMIT $1",
  creators: "SELECT id::text FROM creators ORDER BY md5(id::text) LIMIT $1",
};
