// Small composition functions shared by components: polling and periodic sampling.
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

/** `sample()` every `intervalMs` into a ref: Vue re-renders at this pace, not per frame. */
export function useSampled(sample, intervalMs) {
  const value = shallowRef(sample());
  let timer = 0;
  onMounted(() => {
    timer = setInterval(() => {
      value.value = sample();
    }, intervalMs);
  });
  onBeforeUnmount(() => clearInterval(timer));
  return value;
}
