// The page's current route (route.js), for App.vue: read from the location's hash now and on
// every hashchange, with the listener tied to the component's lifetime.
import { onBeforeUnmount, onMounted, shallowRef } from "vue";
import { parseHash } from "../route.js";

export function useRoute() {
  const route = shallowRef(parseHash(window.location.hash));
  const onHashChange = () => {
    route.value = parseHash(window.location.hash);
  };
  onMounted(() => window.addEventListener("hashchange", onHashChange));
  onBeforeUnmount(() => window.removeEventListener("hashchange", onHashChange));
  return route;
}
