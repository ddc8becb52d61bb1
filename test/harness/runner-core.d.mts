// Types for runner-core.mjs (plain JS so the namespace CLI needs no TypeScript loader); the documented API is in
// github-runner.ts.
import type { ActionOptions, ActionResult, ParsedCommands, StepOptions, StepResult } from './github-runner.js';

export declare const REPO_ROOT: string;
export declare const DEFAULT_TIMEOUT_MS: number;
export declare function inputEnvName(name: string): string;
export declare function loadAction(actionDir: string): unknown;
export declare function runStep(opts: StepOptions): Promise<StepResult>;
export declare function runAction(opts: ActionOptions): Promise<ActionResult>;
export declare function parseKeyValueFile(text: string, file?: string): Record<string, string>;
export declare function parsePathFile(text: string): string[];
export declare function prependPath(added: string[], basePath?: string): string;
export declare function parseWorkflowCommands(stdout: string): ParsedCommands;
export declare function maskLog(text: string, masks: string[]): string;
