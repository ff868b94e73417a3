// A small typed event emitter: on() returns the function that removes the listener.

export class Emitter<E extends { [K in keyof E]: (arg: any) => void }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  private listeners = new Map<keyof E, Set<E[keyof E]>>();

  /** Adds a listener; the returned function removes it. */
  on<K extends keyof E>(event: K, fn: E[K]): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Calls the listeners of event in the order they were added; a throwing listener does not stop the others. */
  protected emit<K extends keyof E>(event: K, arg: Parameters<E[K]>[0]): void {
    for (const fn of this.listeners.get(event) ?? []) {
      try {
        (fn as (a: unknown) => void)(arg);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
