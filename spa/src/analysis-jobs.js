// Analysis jobs for the jobs view (components/AnalysisJobs.vue): the API paths, a page of the
// list, and each job's progress as a figure and a text. The body of a job is the gateway's
// (doc/openapi.yaml, Job): frames_total is null until the whole video has been read.
import { getJson, withQuery, write } from "./api.js";

export const PAGE_SIZE = 20;

export function jobPath(id) {
  return `/api/analysis/${encodeURIComponent(id)}`;
}

/** One page of jobs, newest first. */
export async function listJobs(offset = 0, limit = PAGE_SIZE) {
  const body = await getJson(withQuery("/api/analysis", { limit, offset }));
  return body.jobs;
}

export function deleteJob(id) {
  return write("DELETE", jobPath(id));
}

/** A job request from the form's fields; throws an Error naming the field that is wrong. */
export function jobRequest({ source, types, frameStep, name }) {
  const src = source.trim();
  if (!src) throw new Error("Name a file of the media directory or a URL.");
  const list = [...new Set(types.split(/[\s,]+/).filter(Boolean))];
  if (!list.length) throw new Error("Name at least one inference type.");
  const step = Number(frameStep);
  if (!Number.isInteger(step) || step < 1) throw new Error("The frame step is a whole number, 1 or more.");
  return { source: src, types: list, frame_step: step, name: name.trim() };
}

export function submitJob(fields) {
  return write("POST", "/api/analysis", jobRequest(fields));
}

/**
 * {percent, text}: percent of the kept frames every type has done (null while the video is
 * still being read, since the total is unknown), and what to show beside it.
 */
export function jobProgress(job) {
  if (job.status === "done") return { percent: 100, text: `${job.frames_done} frames` };
  if (job.status === "queued") return { percent: null, text: "waiting for a runner" };
  const total = job.frames_total;
  if (total === null || total === undefined) {
    return { percent: null, text: `${job.frames_done} of ${job.frames_read}+ frames` };
  }
  const percent = total > 0 ? Math.min(100, Math.floor((100 * job.frames_done) / total)) : 100;
  return { percent, text: `${job.frames_done} of ${total} frames` };
}
