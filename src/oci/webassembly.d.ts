// Node has WebAssembly as a global, but TypeScript declares it only in its DOM library, which this project does not
// load (lib: ES2023, types: node). These are the parts the deflate workers use (deflate-workers.ts).
declare namespace WebAssembly {
  class Module {
    constructor(bytes: ArrayBufferView | ArrayBuffer);
  }
  class Instance {
    constructor(module: Module, imports?: object);
    readonly exports: Record<string, unknown>;
  }
  class Memory {
    readonly buffer: ArrayBuffer;
  }
}
