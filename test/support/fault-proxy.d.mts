// Types for fault-proxy.mjs (plain JS, shared with bench/).
export type FaultAction =
  | { status: number; headers?: Record<string, string>; body?: string }
  | { dropAfterBytes: number; forward?: boolean }
  | { dropResponse: true }
  | { stallMs: number }
  | { redirect: string; status?: number };
export interface FaultRule {
  name?: string;
  method?: string;
  path?: RegExp;
  /** Let this many matching requests through before the rule fires. */
  skip?: number;
  /** How many times the rule fires (1: one-shot); default every time. */
  times?: number;
  action: FaultAction;
}
export interface ActiveRule extends FaultRule {
  hits: number;
}
export interface ProxyLogEntry {
  method?: string;
  path?: string;
  host?: string;
  /** Whether the request carried an Authorization header (never its value). */
  authorization: boolean;
  contentRange?: string;
  fault?: string;
}
export interface FaultProxy {
  url: string;
  host: string;
  port: number;
  log: ProxyLogEntry[];
  addRule(rule: FaultRule): ActiveRule;
  clearRules(): void;
  count(method?: string, path?: RegExp): number;
  stop(): Promise<void>;
}
export declare function startFaultProxy(opts: { target: string }): Promise<FaultProxy>;
