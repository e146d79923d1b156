import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, IThemeManager } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { IStatusBar } from '@jupyterlab/statusbar';
import { extensionIcon, lineFormIcon, listIcon, runIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { PaiApi } from './api';
import { Experiment } from './experiment-model';
import { ExperimentDetail, ExperimentsPanel } from './experiments';
import { JobDetail, JobsPanel } from './jobs';
import { MarketPanel } from './market';
import { NniWebUi } from './nni-ui';
import { commandForFile, defaultForm, jobNameFor, MarketItem, notebookToPython } from './model';
import { PaiStatus } from './status';
import { SubmitPanel } from './submit';
import { MainAreaTabs } from './tabs';
import { TaskTerminal } from './terminal';

const CMD = {
  jobs: 'pai:open-jobs',
  job: 'pai:open-job',
  submit: 'pai:open-submit',
  submitFile: 'pai:submit-file',
  market: 'pai:open-marketplace',
  experiments: 'pai:open-experiments',
  experiment: 'pai:open-experiment',
  terminal: 'pai:open-terminal'
};
const RUNNABLE = /\.(ipynb|py|sh)$/;

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'pai-hub:plugin',
  description: 'PAI Hub: jobs, submission, marketplace, experiments and status bar',
  autoStart: true,
  requires: [ILabShell],
  optional: [ICommandPalette, IStatusBar, IDefaultFileBrowser, IThemeManager],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    browser: IDefaultFileBrowser | null,
    themes: IThemeManager | null
  ) => {
    const api = new PaiApi();
    const terminals = new MainAreaTabs<TaskTerminal>(shell, { icon: runIcon });
    const openTerminal = (fw: string, role: string, index: number) =>
      terminals.open(`${fw}/${role}/${index}`, () => new TaskTerminal(api, fw, role, index));

    const jobTabs = new MainAreaTabs<JobDetail>(shell, {
      icon: listIcon,
      opened: job => void job.start(),
      reopened: job => void job.load()
    });
    const openJob = (fw: string) => jobTabs.open(fw, () => new JobDetail(api, fw, openTerminal));

    const jobs = new JobsPanel(api, openJob);
    jobs.title.icon = listIcon;
    shell.add(jobs, 'left', { rank: 600 });

    const submit = new SubmitPanel(api, fw => {
      void jobs.refresh();
      openJob(fw);
    });
    submit.title.icon = runIcon;
    shell.add(submit, 'right', { rank: 600 });
    void submit.loadChoices();

    const market = new MarketPanel(api, (item: MarketItem) => {
      submit.useItem(item);
      shell.activateById(submit.id);
    });
    market.title.icon = extensionIcon;
    shell.add(market, 'left', { rank: 610 });

    const experimentTabs = new MainAreaTabs<ExperimentDetail>(shell, {
      icon: lineFormIcon,
      opened: experiment => void experiment.start(),
      reopened: experiment => void experiment.load()
    });
    const nniTabs = new Map<string, NniWebUi>();
    const openNni = (e: Experiment) => {
      let w = nniTabs.get(e.id);
      if (!w || w.isDisposed) {
        // NNI's page finds its REST API relative to this path (see pai_extension's ExperimentUiHandler)
        w = new NniWebUi(URLExt.join(api.settings.baseUrl, 'pai/nni', e.id, 'oview'), e);
        nniTabs.set(e.id, w);
        shell.add(w, 'main');
      }
      shell.activateById(w.id);
    };
    const openExperiment = (id: string) =>
      experimentTabs.open(id, () => new ExperimentDetail(api, id, openJob, openNni));
    const experiments = new ExperimentsPanel(api, openExperiment);
    experiments.title.icon = lineFormIcon;
    shell.add(experiments, 'left', { rank: 620 });

    app.commands.addCommand(CMD.experiments, {
      label: 'PAI: NNI experiments',
      execute: () => shell.activateById(experiments.id)
    });
    app.commands.addCommand(CMD.experiment, {
      label: 'PAI: Open experiment',
      execute: args => openExperiment(String(args.id))
    });
    app.commands.addCommand(CMD.jobs, { label: 'PAI: Show my jobs', execute: () => shell.activateById(jobs.id) });
    app.commands.addCommand(CMD.submit, { label: 'PAI: Submit a job', execute: () => shell.activateById(submit.id) });
    app.commands.addCommand(CMD.market, { label: 'PAI: Marketplace', execute: () => shell.activateById(market.id) });
    app.commands.addCommand(CMD.job, {
      label: 'PAI: Open job',
      execute: args => openJob(String(args.name))
    });
    app.commands.addCommand(CMD.terminal, {
      label: 'PAI: Open task terminal',
      execute: args => openTerminal(String(args.name), String(args.role ?? 'worker'), Number(args.index ?? 0))
    });

    /** The file the command is about: the file browser's selection (context menu), else the current document. */
    const targetPath = (): string | null => {
      const sel = browser?.selectedItems().next();
      const item = sel && !sel.done ? sel.value : undefined;
      if (item && item.type !== 'directory' && RUNNABLE.test(item.path)) {
        return item.path;
      }
      const current: any = shell.currentWidget;
      const path: string | undefined = current?.context?.path;
      return path && RUNNABLE.test(path) ? path : null;
    };
    app.commands.addCommand(CMD.submitFile, {
      label: 'Submit as PAI job',
      caption: 'Open the PAI submission panel with a job that runs this file',
      isEnabled: () => targetPath() !== null,
      execute: async args => {
        const path = (args.path as string) || targetPath();
        if (!path) {
          return;
        }
        const model = await app.serviceManager.contents.get(path, { content: true });
        const text =
          model.type === 'notebook'
            ? notebookToPython(model.content)
            : model.format === 'base64'
              ? atob(model.content)
              : String(model.content);
        submit.setForm({
          ...defaultForm(),
          virtualCluster: submit.form.virtualCluster,
          name: jobNameFor(path),
          command: commandForFile(path, text)
        });
        shell.activateById(submit.id);
      }
    });
    app.contextMenu.addItem({
      command: CMD.submitFile,
      selector: '.jp-DirListing-item[data-isdir="false"]',
      rank: 20
    });
    app.contextMenu.addItem({ command: CMD.submitFile, selector: '.jp-Notebook', rank: 100 });
    app.contextMenu.addItem({ command: CMD.submitFile, selector: '.jp-FileEditor', rank: 100 });
    if (palette) {
      for (const command of [CMD.jobs, CMD.submit, CMD.market, CMD.experiments, CMD.submitFile]) {
        palette.addItem({ command, category: 'PAI' });
      }
    }

    if (statusBar) {
      const status = new PaiStatus(api, () => shell.activateById(jobs.id));
      statusBar.registerStatusItem('pai-hub:status', { item: status as Widget, align: 'left', rank: 50 });
    }
    themes?.themeChanged.connect(() => {
      for (const terminal of terminals.contents) {
        terminal.updateTheme();
      }
    });
    console.log('pai-hub extension activated');
  }
};

export default plugin;
