// How a stream's registry details (GET /api/streams) are shown on a tile and the detail view.

/** "people, face" from the registry's declared types, else from the results seen. */
export function typesOf(stream, stats) {
  const declared = Array.isArray(stream?.types) ? stream.types : [];
  return (declared.length ? declared : stats.types).join(", ");
}

/** CSS aspect-ratio of a stream's frames, from its registry details when known. */
export function aspectOf(stream) {
  return stream?.w > 0 && stream?.h > 0 ? `${stream.w} / ${stream.h}` : "4 / 3";
}
