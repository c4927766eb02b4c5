/**
 * nbstate for JupyterLab: an nbstate menu, toolbar buttons and keyboard shortcuts for undo,
 * commit, checkout, branch and tag, and a History panel with the commit graph of the current
 * notebook's kernel. Everything goes through nbstate's server extension (server.py), which reads
 * the kernel's store and runs operations in the kernel as silent requests.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, InputDialog, Notification, showErrorMessage } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { INotebookModel, INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { CommandToolbarButton, historyIcon, tagIcon, undoIcon, checkIcon, jumpBackIcon, treeViewIcon } from '@jupyterlab/ui-components';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';
import { Menu, Widget } from '@lumino/widgets';

import { ApiError, JobStatus, KernelInfo, KernelSource, cancelJob, cells, jobStatus, kernelInfo, startJob } from './api.js';
import { CommitEntry, HistoryData, HistoryView, changeSummary, commitTitle, el, formatTime } from './core/view.js';

const PLUGIN_ID = 'nbstate:plugin';

namespace CommandIDs {
  export const undo = 'nbstate:undo';
  export const commit = 'nbstate:commit';
  export const checkout = 'nbstate:checkout';
  export const branch = 'nbstate:branch';
  export const tag = 'nbstate:tag';
  export const history = 'nbstate:history';
  export const enable = 'nbstate:enable';
  export const exportState = 'nbstate:export';
  export const importState = 'nbstate:import';
}

/** The History side panel: the history view of the current notebook's kernel. */
class HistoryPanel extends Widget {
  readonly view: HistoryView;
  private panel: NotebookPanel | null = null;
  private kernelId: string | null = null;
  private timer: number | undefined;
  private enable: (panel: NotebookPanel) => Promise<void>;

  constructor(actions: ConstructorParameters<typeof HistoryView>[0], enable: (panel: NotebookPanel) => Promise<void>) {
    super();
    this.id = 'nbstate-history';
    this.addClass('nbs-panel');
    this.title.icon = historyIcon;
    this.title.caption = 'nbstate History';
    this.enable = enable;
    this.view = new HistoryView(actions);
    const bar = el('div', 'nbs-panel-bar');
    const title = el('span', 'nbs-panel-title', 'History');
    const refresh = el('button', 'jp-mod-styled nbs-button nbs-refresh', 'Refresh', { type: 'button', title: 'read the history again' });
    refresh.addEventListener('click', () => this.update());
    bar.append(title, refresh);
    this.node.append(bar, this.view.node);
  }

  get notebook(): NotebookPanel | null {
    return this.panel;
  }

  setNotebook(panel: NotebookPanel | null): void {
    if (panel === this.panel) {
      return;
    }
    if (this.panel) {
      this.panel.sessionContext.statusChanged.disconnect(this.onStatus, this);
      this.panel.sessionContext.kernelChanged.disconnect(this.onKernel, this);
    }
    this.panel = panel;
    if (panel) {
      panel.sessionContext.statusChanged.connect(this.onStatus, this);
      panel.sessionContext.kernelChanged.connect(this.onKernel, this);
    }
    this.kernelId = null;
    this.view.setSource(null);
    this.update();
  }

  /** Read the history again soon (coalescing bursts of kernel activity). */
  scheduleRefresh(delay = 250): void {
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.update(), delay);
  }

  private onStatus(_: unknown, status: string): void {
    if (status === 'idle') {
      this.scheduleRefresh();
    } else if (status === 'restarting' || status === 'autorestarting') {
      this.kernelId = null;
    }
  }

  private onKernel(): void {
    this.kernelId = null;
    this.scheduleRefresh();
  }

  protected onUpdateRequest(): void {
    void this.load();
  }

  protected onAfterShow(): void {
    this.update();
  }

  private async load(): Promise<void> {
    if (!this.isVisible) {
      return;
    }
    const panel = this.panel;
    if (!panel) {
      this.view.setSource(null);
      this.view.showNotice('Open a notebook to see the history of its variables.');
      return;
    }
    await panel.sessionContext.ready;
    const kernel = panel.sessionContext.session?.kernel;
    if (!kernel) {
      this.view.setSource(null);
      this.view.showNotice('This notebook has no kernel.');
      return;
    }
    const fresh = this.kernelId !== kernel.id;
    let info: KernelInfo;
    try {
      info = await kernelInfo(kernel.id, fresh);
    } catch (err) {
      if (panel !== this.panel) {
        return;
      }
      const e = err as ApiError;
      this.view.showNotice(e.data?.busy ? 'The kernel is busy; the history appears when it is idle.' : `nbstate: ${e.message}`);
      return;
    }
    if (panel !== this.panel) {
      return;
    }
    this.kernelId = kernel.id;
    if (!info.installed) {
      this.view.setSource(null);
      this.view.showNotice(info.error ?? "nbstate is not installed in this kernel's Python.");
      return;
    }
    if (!info.loaded) {
      this.view.setSource(null);
      this.view.showNotice('nbstate is not recording this notebook: its kernel has not loaded it.', {
        label: 'Enable for this notebook',
        className: 'nbs-enable',
        onClick: () => void this.enable(panel).then(() => this.update())
      });
      return;
    }
    this.view.showNotice('');
    const source = this.view.history && !fresh ? null : new KernelSource(kernel.id);
    if (source) {
      this.view.setSource(source);
    }
    try {
      await this.view.refresh();
    } catch (err) {
      this.view.showNotice(`nbstate: ${(err as Error).message}`);
    }
  }
}

/** The body of the progress dialog. */
class ProgressBody extends Widget {
  private bar: HTMLElement;
  private fill: HTMLElement;
  private text: HTMLElement;
  private note: HTMLElement;

  constructor() {
    super();
    this.addClass('nbs-progress');
    this.bar = el('div', 'nbs-progress-bar nbs-indeterminate', undefined, { role: 'progressbar' });
    this.fill = el('div', 'nbs-progress-fill');
    this.bar.append(this.fill);
    this.text = el('div', 'nbs-progress-text', 'Waiting for the kernel…');
    this.note = el('div', 'nbs-progress-note');
    this.node.append(this.bar, this.text, this.note);
  }

  display(job: JobStatus): void {
    const secs = job.elapsed.toFixed(1);
    let text = `${job.message || job.phase} (${secs} s`;
    if (job.estimate !== null && job.estimate !== undefined) {
      text += `, estimated ${job.estimate.toFixed(1)} s`;
    }
    this.text.textContent = text + ')';
    if (job.fraction !== null && job.fraction !== undefined) {
      this.bar.classList.remove('nbs-indeterminate');
      this.fill.style.width = `${Math.round(job.fraction * 100)}%`;
      this.bar.setAttribute('aria-valuenow', String(Math.round(job.fraction * 100)));
    } else {
      this.bar.classList.add('nbs-indeterminate');
    }
    if (job.cancel_requested) {
      this.note.textContent = 'Cancelling: the kernel stops building the state and leaves the variables as they were.';
    } else if (!job.cancellable) {
      this.note.textContent = 'This operation cannot be cancelled: it runs to the end.';
    } else {
      this.note.textContent = 'Cancel stops the operation while the new state is being built aside; the variables are then untouched.';
    }
  }
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

/** Follow a job to its end, with a progress dialog (and Cancel) when it takes a while. */
async function followJob(first: JobStatus, title: string): Promise<JobStatus> {
  let job = first;
  let dialog: Dialog<unknown> | null = null;
  let body: ProgressBody | null = null;
  let finished = false;
  const started = Date.now();
  while (job.state === 'running') {
    await sleep(120);
    job = await jobStatus(job.id);
    if (job.state !== 'running') {
      break;
    }
    if (!dialog && Date.now() - started > 400) {
      body = new ProgressBody();
      dialog = new Dialog({
        title,
        body,
        buttons: job.cancellable ? [Dialog.cancelButton({ label: 'Cancel', className: 'nbs-cancel' })] : [Dialog.okButton({ label: 'Hide' })]
      });
      dialog.addClass('nbs-progress-dialog');
      const current = job;
      void dialog.launch().then(result => {
        if (!finished && result.button.label === 'Cancel' && current.cancellable) {
          void cancelJob(current.id);
          Notification.info('nbstate: cancelling…', { autoClose: 3000 });
        }
      });
    }
    body?.display(job);
  }
  finished = true;
  if (dialog) {
    dialog.resolve(0);
  }
  return job;
}

/** The picker of the Checkout command. */
class CheckoutPicker extends Widget implements Dialog.IBodyWidget<{ ref: string; code: boolean } | null> {
  private chosen: string | null = null;

  constructor(history: HistoryData) {
    super();
    this.addClass('nbs-picker');
    const list = el('div', 'nbs-picker-list', undefined, { role: 'listbox', 'aria-label': 'commits' });
    for (const entry of history.commits) {
      list.append(this.row(entry));
    }
    if (!history.commits.length) {
      list.append(el('p', 'nbs-hint', 'No commits yet: run a cell.'));
    }
    const mode = el('fieldset', 'nbs-picker-mode');
    mode.append(el('legend', undefined, 'Restore'));
    for (const [value, label] of [
      ['vars', 'variables only (the notebook stays as it is)'],
      ['code', "code and variables (the notebook's cells become that commit's)"]
    ]) {
      const id = `nbs-mode-${value}`;
      const input = el('input', undefined, undefined, { type: 'radio', name: 'nbs-mode', value, id });
      if (value === 'vars') {
        input.setAttribute('checked', '');
      }
      const lab = el('label', undefined, ` ${label}`, { for: id });
      const line = el('div');
      line.append(input, lab);
      mode.append(line);
    }
    this.node.append(list, mode);
  }

  private row(entry: CommitEntry): HTMLElement {
    const item = el('div', 'nbs-picker-row' + (entry.head ? ' nbs-row-head' : ''), undefined, {
      role: 'option',
      tabindex: '0',
      'data-commit': entry.commit
    });
    const top = el('div', 'nbs-row-title');
    if (entry.head) {
      top.append(el('span', 'nbs-chip nbs-chip-head', 'HEAD'));
    }
    for (const label of entry.labels) {
      top.append(el('span', `nbs-chip nbs-chip-${label.kind}`, label.kind === 'tag' ? `tag: ${label.name}` : label.name));
    }
    if (entry.execution_count !== null && entry.kind === 'auto') {
      top.append(el('span', 'nbs-count', `[${entry.execution_count}]`));
    }
    top.append(el('span', entry.message || entry.kind !== 'auto' ? 'nbs-message' : 'nbs-code', commitTitle(entry)));
    const meta = el('div', 'nbs-row-meta');
    meta.append(el('span', 'nbs-short', entry.short), el('span', 'nbs-time', formatTime(entry.created_at)), el('span', 'nbs-changes', changeSummary(entry)));
    item.append(top, meta);
    const pick = () => {
      this.chosen = entry.commit;
      for (const r of Array.from(this.node.querySelectorAll('.nbs-picker-row'))) {
        r.classList.toggle('nbs-selected', r === item);
        r.setAttribute('aria-selected', r === item ? 'true' : 'false');
      }
    };
    item.addEventListener('click', pick);
    item.addEventListener('keydown', ev => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        pick();
      }
    });
    return item;
  }

  getValue(): { ref: string; code: boolean } | null {
    if (!this.chosen) {
      return null;
    }
    const code = (this.node.querySelector('input[name="nbs-mode"]:checked') as HTMLInputElement | null)?.value === 'code';
    return { ref: this.chosen, code };
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: "Time travel over a notebook kernel's variables: undo, checkout, branches, tags and a History panel.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IMainMenu, ICommandPalette],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, mainMenu: IMainMenu | null, palette: ICommandPalette | null) => {
    const { commands, shell } = app;

    const current = (): NotebookPanel | null => tracker.currentWidget;

    const kernelOf = (panel: NotebookPanel | null): string | null => panel?.sessionContext.session?.kernel?.id ?? null;

    const fail = (title: string, err: unknown) => {
      void showErrorMessage(title, (err as Error).message ?? String(err));
    };

    const refreshHistory = () => history.scheduleRefresh(50);

    /** Run a job in the notebook's kernel; report its outcome. Returns the final status. */
    const run = async (panel: NotebookPanel, verb: string, args: Record<string, unknown>, title: string): Promise<JobStatus | null> => {
      const kernelId = kernelOf(panel);
      if (!kernelId) {
        void showErrorMessage('nbstate', 'This notebook has no running kernel.');
        return null;
      }
      try {
        const job = await followJob(await startJob(kernelId, verb, args), title);
        refreshHistory();
        if (job.state === 'done') {
          const summary = job.result?.summary;
          if (job.late_cancel) {
            Notification.warning(`nbstate: the operation had finished building the state when the cancel arrived, so it completed. ${summary ?? ''}`, { autoClose: 8000 });
          } else if (summary) {
            Notification.success(`nbstate: ${summary}`, { autoClose: 4000 });
          }
          for (const w of job.result?.warnings ?? []) {
            Notification.warning(`nbstate: ${w}`, { autoClose: 8000 });
          }
        } else if (job.state === 'cancelled') {
          Notification.info(`nbstate: ${job.error ?? 'cancelled; the variables are as they were'}`, { autoClose: 6000 });
        } else {
          void showErrorMessage(`nbstate: ${title} failed`, job.error ?? 'unknown error');
        }
        return job;
      } catch (err) {
        fail(`nbstate: ${title} failed`, err);
        return null;
      }
    };

    const enable = async (panel: NotebookPanel): Promise<void> => {
      await run(panel, 'enable', { notebook_path: panel.context.path }, 'Enabling nbstate');
    };

    /** nbstate must be loaded in the kernel; offer to load it when it is not. */
    const ensureLoaded = async (panel: NotebookPanel): Promise<boolean> => {
      const kernelId = kernelOf(panel);
      if (!kernelId) {
        void showErrorMessage('nbstate', 'This notebook has no running kernel.');
        return false;
      }
      let info: KernelInfo;
      try {
        info = await kernelInfo(kernelId);
      } catch (err) {
        fail('nbstate', err);
        return false;
      }
      if (info.loaded) {
        return true;
      }
      if (!info.installed) {
        void showErrorMessage('nbstate', info.error ?? "nbstate is not installed in this kernel's Python.");
        return false;
      }
      const answer = await new Dialog({
        title: 'Enable nbstate for this notebook?',
        body: 'nbstate is not loaded in this kernel, so it has no history yet. Load it now? From then on every cell run is checkpointed.',
        buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Enable' })]
      }).launch();
      if (!answer.button.accept) {
        return false;
      }
      await enable(panel);
      return true;
    };

    const withNotebook = (fn: (panel: NotebookPanel) => Promise<void>) => async () => {
      const panel = current();
      if (!panel) {
        void showErrorMessage('nbstate', 'Open a notebook first.');
        return;
      }
      await fn(panel);
    };

    const askName = async (title: string, label: string, placeholder: string): Promise<string | null> => {
      const result = await InputDialog.getText({ title, label, placeholder, okLabel: 'Create' });
      const name = result.button.accept ? (result.value ?? '').trim() : '';
      return name || null;
    };

    const checkout = async (panel: NotebookPanel, ref: string, code: boolean) => {
      if (!(await ensureLoaded(panel))) {
        return;
      }
      const kernelId = kernelOf(panel)!;
      let recorded: Awaited<ReturnType<typeof cells>> | null = null;
      if (code) {
        try {
          recorded = await cells(kernelId, ref);
        } catch (err) {
          fail('nbstate: checkout failed', err);
          return;
        }
      }
      const job = await run(panel, 'checkout', { ref }, `Checking out ${ref.slice(0, 8)}`);
      if (!code || job?.state !== 'done') {
        return;
      }
      if (!recorded?.cells) {
        Notification.warning('nbstate: that commit recorded no notebook code; only the variables were restored.', { autoClose: 6000 });
        return;
      }
      replaceCells(panel, recorded.cells);
      Notification.info(`nbstate: the notebook's cells are now those of ${ref.slice(0, 8)} (Edit > Undo brings the previous ones back)`, { autoClose: 6000 });
    };

    const actions = {
      checkout: (commit: string, code: boolean) => {
        const panel = history.notebook;
        if (panel) {
          void checkout(panel, commit, code);
        }
      },
      branch: (commit: string) => {
        const panel = history.notebook;
        if (panel) {
          void askName('New branch', `A branch at ${commit.slice(0, 8)}, named`, 'experiment').then(name => {
            if (name) {
              void run(panel, 'branch', { name, ref: commit }, 'Creating a branch');
            }
          });
        }
      },
      tag: (commit: string) => {
        const panel = history.notebook;
        if (panel) {
          void askName('Tag', `Tag ${commit.slice(0, 8)} as`, 'v1').then(name => {
            if (name) {
              void run(panel, 'tag', { name, ref: commit }, 'Tagging');
            }
          });
        }
      }
    };

    const history = new HistoryPanel(actions, enable);
    shell.add(history, 'right', { rank: 600 });
    history.setNotebook(current());
    tracker.currentChanged.connect((_, panel) => history.setNotebook(panel));
    NotebookActions.executed.connect((_, args) => {
      if (history.notebook && args.notebook === history.notebook.content) {
        history.scheduleRefresh();
      }
    });

    const hasNotebook = () => current() !== null;

    commands.addCommand(CommandIDs.undo, {
      label: 'Undo Last Cell Run',
      caption: 'nbstate: the variables as they were before the last cell ran (the code is not touched)',
      icon: args => (args.toolbar ? undoIcon : undefined),
      isEnabled: hasNotebook,
      execute: withNotebook(async panel => {
        if (await ensureLoaded(panel)) {
          await run(panel, 'undo', { n: 1 }, 'Undoing the last cell run');
        }
      })
    });
    commands.addCommand(CommandIDs.commit, {
      label: 'Commit…',
      caption: 'nbstate: a named checkpoint of the current variables',
      icon: args => (args.toolbar ? checkIcon : undefined),
      isEnabled: hasNotebook,
      execute: withNotebook(async panel => {
        if (!(await ensureLoaded(panel))) {
          return;
        }
        const result = await InputDialog.getText({
          title: 'Commit the current state',
          label: 'Message',
          placeholder: 'what this state is',
          okLabel: 'Commit'
        });
        const message = result.button.accept ? (result.value ?? '').trim() : '';
        if (message) {
          await run(panel, 'commit', { message }, 'Committing');
        }
      })
    });
    commands.addCommand(CommandIDs.checkout, {
      label: 'Checkout…',
      caption: 'nbstate: restore the variables (and optionally the code) of an earlier commit',
      icon: args => (args.toolbar ? jumpBackIcon : undefined),
      isEnabled: hasNotebook,
      execute: withNotebook(async panel => {
        if (!(await ensureLoaded(panel))) {
          return;
        }
        let data: HistoryData;
        try {
          data = await new KernelSource(kernelOf(panel)!).history();
        } catch (err) {
          fail('nbstate', err);
          return;
        }
        const picker = new CheckoutPicker(data);
        const result = await new Dialog({
          title: 'Check out a commit',
          body: picker,
          buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Check out' })]
        }).launch();
        if (result.button.accept && result.value) {
          await checkout(panel, result.value.ref, result.value.code);
        }
      })
    });
    commands.addCommand(CommandIDs.branch, {
      label: 'New Branch…',
      caption: 'nbstate: a branch at HEAD',
      icon: args => (args.toolbar ? treeViewIcon : undefined),
      isEnabled: hasNotebook,
      execute: withNotebook(async panel => {
        if (await ensureLoaded(panel)) {
          const name = await askName('New branch', 'A branch at HEAD, named', 'experiment');
          if (name) {
            await run(panel, 'branch', { name }, 'Creating a branch');
          }
        }
      })
    });
    commands.addCommand(CommandIDs.tag, {
      label: 'Tag…',
      caption: 'nbstate: a tag at HEAD',
      icon: args => (args.toolbar ? tagIcon : undefined),
      isEnabled: hasNotebook,
      execute: withNotebook(async panel => {
        if (await ensureLoaded(panel)) {
          const name = await askName('Tag', 'Tag HEAD as', 'v1');
          if (name) {
            await run(panel, 'tag', { name }, 'Tagging');
          }
        }
      })
    });
    commands.addCommand(CommandIDs.history, {
      label: 'History Panel',
      caption: "nbstate: the commit graph of this notebook's variables",
      icon: args => (args.toolbar ? historyIcon : undefined),
      execute: () => {
        shell.activateById(history.id);
        history.scheduleRefresh(0);
      }
    });
    commands.addCommand(CommandIDs.enable, {
      label: 'Enable for This Notebook',
      caption: "nbstate: load nbstate into this notebook's kernel",
      isEnabled: hasNotebook,
      execute: withNotebook(async panel => {
        await enable(panel);
        history.scheduleRefresh(0);
      })
    });
    commands.addCommand(CommandIDs.exportState, {
      label: 'Export State…',
      caption: 'nbstate: write the current state to a directory, a .nbstate file or s3:// URL',
      isEnabled: hasNotebook,
      execute: withNotebook(async panel => {
        if (!(await ensureLoaded(panel))) {
          return;
        }
        const result = await InputDialog.getText({ title: 'Export the current state', label: 'Destination (relative to the kernel\'s directory)', placeholder: 'state.nbstate', okLabel: 'Export' });
        const dest = result.button.accept ? (result.value ?? '').trim() : '';
        if (dest) {
          await run(panel, 'export', { dest }, 'Exporting');
        }
      })
    });
    commands.addCommand(CommandIDs.importState, {
      label: 'Import State…',
      caption: 'nbstate: restore the state a bundle holds into this kernel',
      isEnabled: hasNotebook,
      execute: withNotebook(async panel => {
        if (!(await ensureLoaded(panel))) {
          return;
        }
        const result = await InputDialog.getText({ title: 'Import a state', label: 'Bundle (a directory, a .nbstate file or s3:// URL)', placeholder: 'state.nbstate', okLabel: 'Import' });
        const src = result.button.accept ? (result.value ?? '').trim() : '';
        if (src) {
          await run(panel, 'import', { src }, 'Importing');
        }
      })
    });

    const ordered = [
      CommandIDs.undo,
      CommandIDs.commit,
      CommandIDs.checkout,
      CommandIDs.branch,
      CommandIDs.tag,
      CommandIDs.history,
      CommandIDs.enable,
      CommandIDs.exportState,
      CommandIDs.importState
    ];
    if (mainMenu) {
      const menu = new Menu({ commands });
      menu.id = 'jp-mainmenu-nbstate';
      menu.title.label = 'nbstate';
      ordered.slice(0, 5).forEach(command => menu.addItem({ command }));
      menu.addItem({ type: 'separator' });
      menu.addItem({ command: CommandIDs.history });
      menu.addItem({ command: CommandIDs.enable });
      menu.addItem({ type: 'separator' });
      menu.addItem({ command: CommandIDs.exportState });
      menu.addItem({ command: CommandIDs.importState });
      mainMenu.addMenu(menu, true, { rank: 1000 });
    }
    if (palette) {
      for (const command of ordered) {
        palette.addItem({ command, category: 'nbstate' });
      }
    }
    app.docRegistry.addWidgetExtension('Notebook', new ToolbarButtons(commands));
  }
};

/** Replace the notebook's cells by recorded ones (outputs cleared), as one undoable change. */
function replaceCells(panel: NotebookPanel, recorded: { id?: string; cell_type: string; source: string }[]): void {
  const model = panel.content.model;
  if (!model) {
    return;
  }
  const shared = model.sharedModel;
  const seen = new Set<string>();
  const fresh = recorded.map(c => {
    const base: Record<string, unknown> = { cell_type: c.cell_type === 'markdown' || c.cell_type === 'raw' ? c.cell_type : 'code', source: c.source, metadata: {} };
    if (base.cell_type === 'code') {
      base.outputs = [];
      base.execution_count = null;
    }
    if (c.id && !seen.has(c.id)) {
      seen.add(c.id);
      base.id = c.id;
    }
    return base;
  });
  shared.transact(() => {
    shared.deleteCellRange(0, shared.cells.length);
    shared.insertCells(0, fresh as any);
  });
}

/** Toolbar buttons of every notebook: Undo, Commit, Checkout, History. */
class ToolbarButtons implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel> {
  constructor(private commands: JupyterFrontEnd['commands']) {}

  createNew(panel: NotebookPanel): IDisposable {
    const items: [string, string, string][] = [
      ['nbstate-undo', CommandIDs.undo, 'Undo run'],
      ['nbstate-commit', CommandIDs.commit, 'Commit'],
      ['nbstate-checkout', CommandIDs.checkout, 'Checkout'],
      ['nbstate-history', CommandIDs.history, 'History']
    ];
    const buttons = items.map(([name, id, label], i) => {
      const button = new CommandToolbarButton({ commands: this.commands, id, args: { toolbar: true }, label });
      button.addClass(`nbs-toolbar-${name}`);
      panel.toolbar.insertItem(10 + i, name, button);
      return button;
    });
    return new DisposableDelegate(() => buttons.forEach(b => b.dispose()));
  }
}

export default plugin;
