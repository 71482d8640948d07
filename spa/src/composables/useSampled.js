// Showing state that changes on every frame message (StreamState is plain JS, not reactive):
// a component samples it at a fixed pace instead of re-rendering per frame.
import { onBeforeUnmount, onMounted, shallowRef } from "vue";

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
