/**
 * The client of nbstate's server extension (src/nbstate/server.py).
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { DiffData, HistoryData, ShowData, Source } from './core/view.js';

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly data: any) {
    super(message);
  }
}

export interface KernelInfo {
  installed: boolean;
  loaded: boolean;
  version?: string;
  store?: string;
  notebook?: string;
  notebook_path?: string | null;
  head?: string | null;
  branch?: string | null;
  error?: string;
}

export interface JobStatus {
  id: string;
  verb: string;
  state: 'running' | 'done' | 'failed' | 'cancelled';
  result: any;
  error: string | null;
  elapsed: number;
  phase: string;
  message: string;
  estimate: number | null;
  fraction: number | null;
  cancellable: boolean;
  cancel_requested: boolean;
  late_cancel: boolean;
}

export interface CellsData {
  commit: string;
  cells: { id?: string; cell_type: string; source: string }[] | null;
}

export async function request<T>(path: string, init: RequestInit = {}, params: Record<string, string> = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const query = new URLSearchParams(params).toString();
  const url = URLExt.join(settings.baseUrl, 'nbstate', 'api', path) + (query ? `?${query}` : '');
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (err) {
    throw new ApiError(0, `the Jupyter server did not answer: ${(err as Error).message}`, null);
  }
  const text = await response.text();
  let data: any = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { error: text };
  }
  if (!response.ok) {
    const missing = response.status === 404 && !data.error;
    throw new ApiError(
      response.status,
      missing ? "nbstate's server extension is not enabled: `jupyter server extension enable nbstate.server`, then restart JupyterLab" : data.error ?? response.statusText,
      data
    );
  }
  return data as T;
}

export function kernelInfo(kernelId: string, refresh = false): Promise<KernelInfo> {
  return request(`kernels/${kernelId}/info`, {}, refresh ? { refresh: '1' } : {});
}

export function startJob(kernelId: string, verb: string, args: Record<string, unknown>): Promise<JobStatus> {
  return request(`kernels/${kernelId}/ops`, { method: 'POST', body: JSON.stringify({ verb, args }) });
}

export function jobStatus(jobId: string): Promise<JobStatus> {
  return request(`jobs/${jobId}`);
}

export function cancelJob(jobId: string): Promise<JobStatus> {
  return request(`jobs/${jobId}/cancel`, { method: 'POST', body: '{}' });
}

export function cells(kernelId: string, ref: string): Promise<CellsData> {
  return request(`kernels/${kernelId}/cells`, {}, { ref });
}

/** The history view's source for one kernel. */
export class KernelSource implements Source {
  constructor(readonly kernelId: string) {}
  history(): Promise<HistoryData> {
    return request(`kernels/${this.kernelId}/history`);
  }
  show(ref: string): Promise<ShowData> {
    return request(`kernels/${this.kernelId}/show`, {}, { ref });
  }
  diff(a: string, b: string): Promise<DiffData> {
    return request(`kernels/${this.kernelId}/diff`, {}, { a, b });
  }
}
