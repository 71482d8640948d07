// Moving keyboard focus to an element Vue is about to render (a confirm button that replaces
// the one clicked, a form field the user must reach): wait for the render, then focus it.
import { nextTick } from "vue";

/** Focus the element `selector` names once the pending render is done; nothing if none. */
export async function focusWhenShown(selector) {
  await nextTick();
  document.querySelector(selector)?.focus();
}

/** The selector of a table row's confirm-delete button (`attr` names the row's id attribute). */
export function confirmDeleteIn(attr, id) {
  return `tr[${attr}="${CSS.escape(id)}"] [data-testid="confirm-delete"]`;
}
