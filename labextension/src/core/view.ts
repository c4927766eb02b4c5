/**
 * The history view: the commit graph with branches and tags, one commit in full, and the diff
 * of two commits. Plain DOM, no framework, so that the JupyterLab History panel and the page of
 * `nbstate serve` are the same code. Text from the store (cells, values) is only ever set as
 * textContent.
 */

import { edgePath, layoutGraph } from './layout.js';

export interface Label {
  kind: 'branch' | 'tag';
  name: string;
  head?: string;
}

export interface CommitEntry {
  commit: string;
  short: string;
  parent: string | null;
  kind: string;
  message: string | null;
  execution_count: number | null;
  created_at: number;
  first_line: string;
  created: string[];
  changed: string[];
  deleted: string[];
  bytes_added: number;
  error: string | null;
  labels: Label[];
  head: boolean;
}

export interface HistoryData {
  notebook: string;
  store: string;
  head: string | null;
  branch: string | null;
  branches: Record<string, string>;
  tags: Record<string, string>;
  commits: CommitEntry[];
  total: number;
  truncated: boolean;
}

export interface VariableInfo {
  name: string;
  type: string;
  size: number;
  size_text: string;
  serializable: boolean;
  reason: string | null;
  change: string;
}

export interface ShowData {
  commit: string;
  short: string;
  parent: string | null;
  kind: string;
  message: string | null;
  date: string;
  execution_count: number | null;
  code: string | null;
  duration: number | null;
  error: string | null;
  variables: VariableInfo[];
  created: string[];
  changed: string[];
  deleted: string[];
  has_code: boolean;
}

export interface DiffData {
  a: string;
  b: string;
  variables: { name: string; change: 'added' | 'removed' | 'changed'; before: string | null; after: string | null }[];
  code: string[];
}

/** Where the view reads from: the server extension for a kernel, or `nbstate serve`. */
export interface Source {
  history(): Promise<HistoryData>;
  show(ref: string): Promise<ShowData>;
  diff(a: string, b: string): Promise<DiffData>;
}

/** What a selected commit offers; absent in the read-only web app. */
export interface Actions {
  checkout(commit: string, code: boolean): void;
  branch(commit: string): void;
  tag(commit: string): void;
}

export const ROW_HEIGHT = 42;
export const LANE_WIDTH = 14;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls?: string,
  text?: string,
  attrs?: Record<string, string>
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) {
    node.className = cls;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  for (const [k, v] of Object.entries(attrs ?? {})) {
    node.setAttribute(k, v);
  }
  return node;
}

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag: string, attrs: Record<string, string | number>): SVGElement {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, String(v));
  }
  return node;
}

export function formatTime(seconds: number, now: Date = new Date()): string {
  const d = new Date(seconds * 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === now.toDateString()) {
    return time;
  }
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time.slice(0, 5)}`;
}

/** "+a ~b -c", the variables a commit created, changed and deleted. */
export function changeSummary(e: { created: string[]; changed: string[]; deleted: string[] }): string {
  const parts: string[] = [];
  if (e.created.length) {
    parts.push('+' + e.created.join(', +'));
  }
  if (e.changed.length) {
    parts.push('~' + e.changed.join(', ~'));
  }
  if (e.deleted.length) {
    parts.push('-' + e.deleted.join(', -'));
  }
  return parts.join('  ') || 'no change';
}

export function commitTitle(e: CommitEntry): string {
  if (e.kind === 'baseline') {
    return e.message || 'nbstate loaded';
  }
  if (e.message) {
    return e.message;
  }
  return e.first_line || '(empty cell)';
}

/** Lane colours, cycled. */
const COLOURS = ['#1976d2', '#e65100', '#2e7d32', '#8e24aa', '#c62828', '#00838f', '#6d4c41'];

export class HistoryView {
  readonly node: HTMLElement;
  private source: Source | null = null;
  private actions: Actions | null;
  private data: HistoryData | null = null;
  private selected: string[] = [];
  private header: HTMLElement;
  private notice: HTMLElement;
  private graph: HTMLElement;
  private details: HTMLElement;
  private detailToken = 0;
  private refreshing: Promise<void> | null = null;
  private again = false;

  constructor(actions?: Actions) {
    this.actions = actions ?? null;
    this.node = el('div', 'nbs-history');
    this.header = el('div', 'nbs-header');
    this.notice = el('div', 'nbs-notice');
    this.graph = el('div', 'nbs-graph', undefined, { role: 'listbox', 'aria-label': 'commits', 'aria-multiselectable': 'true' });
    this.details = el('div', 'nbs-details');
    this.node.append(this.header, this.notice, this.graph, this.details);
    this.showNotice('');
  }

  /** The commits shown (newest first), as last fetched. */
  get history(): HistoryData | null {
    return this.data;
  }

  get selection(): readonly string[] {
    return this.selected;
  }

  setSource(source: Source | null): void {
    if (source !== this.source) {
      this.source = source;
      this.data = null;
      this.selected = [];
      this.graph.replaceChildren();
      this.details.replaceChildren();
      this.header.replaceChildren();
    }
  }

  /** A message above the graph (empty: none), with an optional button. */
  showNotice(text: string, button?: { label: string; onClick: () => void; className?: string }): void {
    this.notice.replaceChildren();
    this.notice.hidden = !text;
    if (!text) {
      return;
    }
    this.notice.append(el('p', undefined, text));
    if (button) {
      const b = el('button', `jp-mod-styled jp-mod-accept nbs-button ${button.className ?? ''}`, button.label, { type: 'button' });
      b.addEventListener('click', button.onClick);
      this.notice.append(b);
    }
  }

  clear(): void {
    this.data = null;
    this.selected = [];
    this.graph.replaceChildren();
    this.details.replaceChildren();
    this.header.replaceChildren();
  }

  /** Fetch the history again and redraw, keeping the selection. Calls made meanwhile coalesce. */
  async refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        const source = this.source;
        if (!source) {
          return;
        }
        const data = await source.history();
        if (source !== this.source) {
          return;
        }
        this.data = data;
        this.selected = this.selected.filter(id => data.commits.some(c => c.commit === id));
        this.render();
      } while (this.again);
    })();
    try {
      await this.refreshing;
    } finally {
      this.refreshing = null;
    }
  }

  /** Select commits by id (at most two), as clicking them would. */
  select(ids: string[]): void {
    this.selected = ids.slice(-2);
    this.markSelection();
    void this.renderDetails();
  }

  private render(): void {
    const data = this.data!;
    this.header.replaceChildren();
    const where = data.branch ? `on ${data.branch}` : data.head ? `detached at ${data.head.slice(0, 8)}` : 'no commits yet';
    this.header.append(
      el('span', 'nbs-header-title', data.notebook),
      el('span', 'nbs-header-head', `HEAD ${where}`),
      el('span', 'nbs-header-count', `${data.total} commit${data.total === 1 ? '' : 's'}`)
    );
    this.renderGraph(data);
    this.markSelection();
    void this.renderDetails();
  }

  private renderGraph(data: HistoryData): void {
    const layout = layoutGraph(data.commits);
    const graphWidth = Math.max(1, layout.width) * LANE_WIDTH + 8;
    const box = el('div', 'nbs-graph-box');
    box.style.height = `${data.commits.length * ROW_HEIGHT}px`;
    const picture = svg('svg', {
      class: 'nbs-lines',
      width: graphWidth,
      height: Math.max(1, data.commits.length) * ROW_HEIGHT,
      'aria-hidden': 'true'
    });
    for (const e of layout.edges) {
      picture.appendChild(
        svg('path', {
          d: edgePath(e, LANE_WIDTH, ROW_HEIGHT, LANE_WIDTH / 2 + 4, ROW_HEIGHT / 2),
          class: 'nbs-edge' + (e.truncated ? ' nbs-edge-cut' : ''),
          stroke: COLOURS[e.lane % COLOURS.length]
        })
      );
    }
    for (const n of layout.nodes) {
      const entry = data.commits[n.row];
      const colour = COLOURS[n.lane % COLOURS.length];
      const cx = LANE_WIDTH / 2 + 4 + n.lane * LANE_WIDTH;
      const cy = n.row * ROW_HEIGHT + ROW_HEIGHT / 2;
      const circle = svg('circle', {
        cx,
        cy,
        r: entry.head ? 6 : entry.kind === 'manual' ? 5 : 4,
        fill: entry.kind === 'manual' || entry.head ? colour : 'var(--jp-layout-color1, #fff)',
        stroke: colour,
        'stroke-width': 2,
        class: 'nbs-node' + (entry.head ? ' nbs-node-head' : '')
      });
      picture.appendChild(circle);
    }
    box.appendChild(picture);
    data.commits.forEach((entry, row) => {
      const item = el('div', 'nbs-row' + (entry.head ? ' nbs-row-head' : '') + (entry.error ? ' nbs-row-failed' : ''), undefined, {
        role: 'option',
        'data-commit': entry.commit,
        tabindex: '0',
        title: `${entry.short}: ${commitTitle(entry)}\n${changeSummary(entry)}\nclick: select; Ctrl/Shift+click: select a second commit to compare`
      });
      item.style.top = `${row * ROW_HEIGHT}px`;
      item.style.height = `${ROW_HEIGHT}px`;
      item.style.paddingLeft = `${graphWidth + 2}px`;
      const line1 = el('div', 'nbs-row-title');
      if (entry.head) {
        line1.append(el('span', 'nbs-chip nbs-chip-head', 'HEAD'));
      }
      for (const label of entry.labels) {
        line1.append(el('span', `nbs-chip nbs-chip-${label.kind}${label.head ? ' nbs-chip-current' : ''}`, label.kind === 'tag' ? `tag: ${label.name}` : label.name));
      }
      if (entry.execution_count !== null && entry.kind === 'auto') {
        line1.append(el('span', 'nbs-count', `[${entry.execution_count}]`));
      }
      line1.append(el('span', entry.message || entry.kind !== 'auto' ? 'nbs-message' : 'nbs-code', commitTitle(entry)));
      const line2 = el('div', 'nbs-row-meta');
      line2.append(
        el('span', 'nbs-short', entry.short),
        el('span', 'nbs-time', formatTime(entry.created_at)),
        el('span', 'nbs-changes', changeSummary(entry))
      );
      if (entry.error) {
        line2.append(el('span', 'nbs-failed', 'failed'));
      }
      item.append(line1, line2);
      item.addEventListener('click', ev => this.onClick(entry.commit, ev));
      item.addEventListener('keydown', ev => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          this.onClick(entry.commit, ev);
        }
      });
      box.appendChild(item);
    });
    if (data.truncated) {
      const more = el('div', 'nbs-more', `${data.total - data.commits.length} older commit(s) not shown`);
      more.style.top = `${data.commits.length * ROW_HEIGHT}px`;
      box.appendChild(more);
      box.style.height = `${(data.commits.length + 1) * ROW_HEIGHT}px`;
    }
    if (!data.commits.length) {
      box.appendChild(el('div', 'nbs-empty', 'No commits yet: run a cell.'));
      box.style.height = 'auto';
    }
    this.graph.replaceChildren(box);
  }

  private onClick(id: string, ev: MouseEvent | KeyboardEvent): void {
    const add = ev.ctrlKey || ev.metaKey || ev.shiftKey;
    if (add) {
      if (this.selected.includes(id)) {
        this.selected = this.selected.filter(s => s !== id);
      } else {
        this.selected = [...this.selected, id].slice(-2);
      }
    } else {
      this.selected = this.selected.length === 1 && this.selected[0] === id ? [] : [id];
    }
    this.markSelection();
    void this.renderDetails();
  }

  private markSelection(): void {
    for (const row of Array.from(this.graph.querySelectorAll<HTMLElement>('.nbs-row'))) {
      const on = this.selected.includes(row.dataset.commit ?? '');
      row.classList.toggle('nbs-selected', on);
      row.setAttribute('aria-selected', on ? 'true' : 'false');
    }
  }

  private async renderDetails(): Promise<void> {
    const token = ++this.detailToken;
    const source = this.source;
    if (!source || !this.data) {
      return;
    }
    if (this.selected.length === 0) {
      this.details.replaceChildren(
        el('p', 'nbs-hint', 'Select a commit to see it in full; Ctrl- or Shift-click a second one to compare the two.')
      );
      return;
    }
    this.details.replaceChildren(el('p', 'nbs-hint', 'Loading…'));
    try {
      if (this.selected.length === 1) {
        const shown = await source.show(this.selected[0]);
        if (token === this.detailToken) {
          this.details.replaceChildren(this.renderShow(shown));
        }
      } else {
        const rows = this.data.commits.map(c => c.commit);
        const [x, y] = this.selected;
        // Older first: the diff reads as what happened from one to the other.
        const [a, b] = rows.indexOf(x) > rows.indexOf(y) ? [x, y] : [y, x];
        const d = await source.diff(a, b);
        if (token === this.detailToken) {
          this.details.replaceChildren(this.renderDiff(d));
        }
      }
    } catch (err) {
      if (token === this.detailToken) {
        this.details.replaceChildren(el('p', 'nbs-error', `Could not load: ${(err as Error).message}`));
      }
    }
  }

  private renderShow(s: ShowData): HTMLElement {
    const box = el('div', 'nbs-show');
    const title = el('div', 'nbs-show-title');
    title.append(el('strong', undefined, `commit ${s.short}`), el('span', 'nbs-time', ` ${s.date}`));
    if (s.execution_count !== null) {
      title.append(el('span', 'nbs-count', ` cell [${s.execution_count}]`));
    }
    if (s.kind !== 'auto') {
      title.append(el('span', 'nbs-kind', ` ${s.kind === 'manual' ? 'named commit' : s.kind}`));
    }
    box.append(title);
    if (s.message) {
      box.append(el('div', 'nbs-message', s.message));
    }
    if (this.actions) {
      const bar = el('div', 'nbs-actions');
      const actions = this.actions;
      const button = (label: string, cls: string, onClick: () => void, disabled = false, tip = '') => {
        const b = el('button', `jp-mod-styled nbs-button ${cls}`, label, { type: 'button', title: tip });
        b.disabled = disabled;
        b.addEventListener('click', onClick);
        bar.append(b);
      };
      button('Check out variables', 'jp-mod-accept nbs-checkout-vars', () => actions.checkout(s.commit, false), false, 'restore the variables of this commit; the notebook stays as it is');
      button(
        'Check out code + variables',
        'nbs-checkout-code',
        () => actions.checkout(s.commit, true),
        !s.has_code,
        s.has_code ? "restore the variables and replace the notebook's cells by those of this commit" : 'this commit recorded no notebook code'
      );
      button('Branch here…', 'nbs-branch-here', () => actions.branch(s.commit));
      button('Tag…', 'nbs-tag-here', () => actions.tag(s.commit));
      box.append(bar);
    }
    if (s.code !== null && s.kind === 'auto') {
      box.append(el('pre', 'nbs-code-block', s.code));
    }
    if (s.error) {
      box.append(el('div', 'nbs-error', `the cell failed: ${s.error}`));
    }
    const table = el('table', 'nbs-vars');
    const head = el('tr');
    head.append(el('th', undefined, ''), el('th', undefined, 'variable'), el('th', undefined, 'type'), el('th', undefined, 'size'));
    table.append(head);
    for (const v of s.variables) {
      const tr = el('tr', v.change ? `nbs-var-${v.change}` : '');
      tr.append(
        el('td', 'nbs-mark', v.change === 'created' ? '+' : v.change === 'changed' ? '~' : ''),
        el('td', 'nbs-name', v.name),
        el('td', undefined, v.type + (v.serializable ? '' : ' (replayed)'), v.reason ? { title: v.reason } : {}),
        el('td', 'nbs-size', v.size_text)
      );
      table.append(tr);
    }
    for (const name of s.deleted) {
      const tr = el('tr', 'nbs-var-deleted');
      tr.append(el('td', 'nbs-mark', '-'), el('td', 'nbs-name', name), el('td', undefined, 'deleted'), el('td'));
      table.append(tr);
    }
    box.append(el('div', 'nbs-section', `variables (${s.variables.length})`), table);
    return box;
  }

  private renderDiff(d: DiffData): HTMLElement {
    const box = el('div', 'nbs-diff');
    box.append(el('div', 'nbs-show-title', `diff ${d.a.slice(0, 8)} → ${d.b.slice(0, 8)}`));
    if (!d.variables.length) {
      box.append(el('p', 'nbs-hint', 'No variable differs.'));
    } else {
      const table = el('table', 'nbs-vars nbs-diff-vars');
      const head = el('tr');
      head.append(el('th', undefined, ''), el('th', undefined, 'variable'), el('th', undefined, d.a.slice(0, 8)), el('th', undefined, d.b.slice(0, 8)));
      table.append(head);
      for (const v of d.variables) {
        const tr = el('tr', `nbs-var-${v.change}`);
        tr.append(
          el('td', 'nbs-mark', v.change === 'added' ? '+' : v.change === 'removed' ? '-' : '~'),
          el('td', 'nbs-name', v.name),
          el('td', 'nbs-before', v.before ?? ''),
          el('td', 'nbs-after', v.after ?? '')
        );
        table.append(tr);
      }
      box.append(el('div', 'nbs-section', 'variables'), table);
    }
    box.append(el('div', 'nbs-section', 'code'));
    if (!d.code.length) {
      box.append(el('p', 'nbs-hint', 'The code is the same.'));
    } else {
      const pre = el('pre', 'nbs-code-diff');
      for (const line of d.code) {
        const cls = line.startsWith('+++') || line.startsWith('---') ? 'nbs-diff-file' : line.startsWith('+') ? 'nbs-diff-add' : line.startsWith('-') ? 'nbs-diff-del' : line.startsWith('@@') ? 'nbs-diff-hunk' : '';
        pre.append(el('span', cls, line + '\n'));
      }
      box.append(pre);
    }
    return box;
  }
}
