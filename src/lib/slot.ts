/**
 * Slot: a place one running component fills while it runs (the OPC UA trust list, for instance) and
 * others read without importing that component. `attach` returns the function that empties it again.
 */
export class Slot<T> {
  #value: T | undefined;

  attach(value: T): () => void {
    this.#value = value;
    return () => {
      if (this.#value === value) this.#value = undefined;
    };
  }

  get current(): T | undefined {
    return this.#value;
  }
}
