// Types for readme-tables.mjs, for test/unit/readme.test.ts.
export interface LoadedAction {
  name: string;
  action: unknown;
}
export declare function cell(text: unknown): string;
export declare function renderTables(action: unknown): string;
export declare function loadActions(root: string): LoadedAction[];
export declare function updateReadme(
  readme: string,
  actions: LoadedAction[],
): { text: string; drifted: string[]; problems: string[] };
