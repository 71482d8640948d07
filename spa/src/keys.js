// Provide/inject keys of the page. Symbols, not strings: a misspelt key is an import error
// instead of a silent `undefined`, and nothing else on the page can provide the same key.

/** The page's one LiveFeed (live/feed.js), provided by App.vue. */
export const FEED = Symbol("feed");

/** The page's session (auth/session.js): who is logged in, login and logout. */
export const SESSION = Symbol("session");
