// The login form's states, apart from its markup (components/LoginPage.vue): busy while the
// request is out, then an error that says what happened: wrong password, rate-limited (with
// a countdown from Retry-After; the button waits for it), bad request, server unavailable.
// The password is an argument, never state: the component reads it from the field and clears
// the field before calling `submit`, so nothing of the page keeps it.
import { reactive } from "vue";

/** What a failed login attempt says: {kind, text, retryAt} (retryAt in ms, 0 if none), and
 * for a rate limit the `seconds` it asked to wait. */
export function loginFailure(err, now = Date.now()) {
  const status = err?.status ?? 0;
  if (status === 401) return { kind: "wrong", text: "Wrong user name or password.", retryAt: 0 };
  if (status === 429) {
    const seconds = err.retryAfter ?? 60;
    return { kind: "limited", text: "Too many failed logins.", retryAt: now + seconds * 1000, seconds };
  }
  if (status === 0 || status >= 500) {
    return {
      kind: "unavailable",
      text: `The server is unavailable (${err.message}). Try again in a moment.`,
      retryAt: 0,
    };
  }
  return { kind: "refused", text: err.message, retryAt: 0 };
}

/** Seconds left before another attempt is allowed (0: allowed now). */
export function secondsLeft(retryAt, now = Date.now()) {
  return Math.max(0, Math.ceil((retryAt - now) / 1000));
}

/** The form's reactive state and its submit, logging in through `session`. */
export function createLoginForm(session, clock = () => Date.now()) {
  const form = reactive({ name: "", busy: false, error: null }); // error: loginFailure(...)

  async function submit(password) {
    if (form.busy || (form.error && secondsLeft(form.error.retryAt, clock()) > 0)) return false;
    const name = form.name.trim();
    if (!name || !password) {
      form.error = { kind: "missing", text: "Enter your user name and password.", retryAt: 0 };
      return false;
    }
    form.busy = true;
    form.error = null;
    try {
      await session.login(name, password);
      return true;
    } catch (err) {
      form.error = loginFailure(err, clock());
      return false;
    } finally {
      form.busy = false;
    }
  }

  return { form, submit };
}
