// Polling a REST resource from a component (the system panel, the counts chart): the timer
// belongs to the component, so it starts when the component mounts and stops when it goes.
import { onBeforeUnmount, onMounted, ref, shallowRef } from "vue";

/**
 * Call `load` now and then `intervalMs` after each call finishes (never two at once).
 * `data` keeps the last good value while a later call fails; `error` says why it failed.
 */
export function usePoll(load, intervalMs) {
  const data = shallowRef(null);
  const error = ref("");
  let timer = 0;
  let stopped = false;
  let running = false;
  async function tick() {
    if (running) return;
    running = true;
    clearTimeout(timer);
    try {
      data.value = await load();
      error.value = "";
    } catch (err) {
      error.value = err.message;
    } finally {
      running = false;
    }
    if (!stopped) timer = setTimeout(tick, intervalMs);
  }
  onMounted(tick);
  onBeforeUnmount(() => {
    stopped = true;
    clearTimeout(timer);
  });
  return { data, error, refresh: tick };
}
