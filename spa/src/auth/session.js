// Who is logged in, for the whole page: GET /api/me at start, POST /api/login and
// /api/logout, and the CSRF token every write sends. The cookie is HttpOnly, so the page
// knows only what /api/me says. Plain JS with a reactive `state` (no component): App.vue
// shows the login page whenever `state.phase` is not "in".
import { reactive } from "vue";
import { ApiError, request, setAuthHooks } from "../api.js";

/**
 * `state.phase`: "checking" (first /api/me pending), "out", "in", or "unreachable" (/api/me
 * got no usable answer). `state.user`: {name, role, kind, auth} while in. `state.notice`: why
 * the login page is shown (logged out, session ended), for the page to say.
 */
export function createSession() {
  const state = reactive({ phase: "checking", user: null, notice: "", error: "" });
  let csrf = null; // not reactive: nothing renders it

  function signedIn(me) {
    csrf = me.csrf ?? null;
    state.user = { name: me.name, role: me.role, kind: me.kind, auth: me.auth !== false };
    state.phase = "in";
    state.notice = "";
    state.error = "";
  }

  function signedOut(notice) {
    csrf = null;
    state.user = null;
    state.phase = "out";
    state.notice = notice;
  }

  /** A 401 from any call: the session expired or was revoked (only news while logged in). */
  function expired() {
    if (state.phase === "in") signedOut("Your session has ended. Log in again.");
  }

  /** Ask the server who we are; 401 means the login page, no answer means "unreachable". */
  async function load() {
    try {
      signedIn(await request("/api/me"));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        // (from "in", the 401 hook has already said why)
        if (state.phase !== "out") signedOut("");
      } else {
        state.phase = "unreachable";
        state.error = err.message;
      }
    }
  }

  return {
    state,
    /** Connect the API wrapper to this session and find out whether we are logged in. */
    start() {
      setAuthHooks({
        csrf: () => csrf,
        loggedOut: expired,
        refreshCsrf: async () => signedIn(await request("/api/me")),
      });
      return load();
    },
    load,
    /** Resolves once logged in; throws the ApiError otherwise (the form says why). */
    async login(name, password) {
      signedIn(await request("/api/login", {
        method: "POST",
        body: { name, password },
        loginAttempt: true,
      }));
    },
    /** Ends the session on the server; a 401 means it had already ended, which is as good. */
    async logout() {
      try {
        await request("/api/logout", { method: "POST" });
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) throw err;
      }
      signedOut("You have logged out.");
    },
  };
}
