/**
 * The generate/calibrate progress line on stderr: samples done, the current stage and step, seconds per sample and
 * the ETA. On a terminal it redraws one line; elsewhere (CI logs, files) it prints a line per finished sample, so
 * logs stay readable.
 */
export interface ProgressBarOptions {
  total: number;
  /** Samples already finished before this run (resume); they count as done but not in the speed. */
  done?: number;
  stream?: NodeJS.WriteStream;
  /** Force line mode (default: when the stream is not a TTY). */
  lines?: boolean;
}

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

export class ProgressBar {
  private readonly stream: NodeJS.WriteStream;
  private readonly lines: boolean;
  private readonly start = performance.now();
  private finished = 0;
  private stepText = '';
  private lastDraw = 0;

  constructor(private readonly o: ProgressBarOptions) {
    this.stream = o.stream ?? process.stderr;
    this.lines = o.lines ?? !this.stream.isTTY;
  }

  private text(): string {
    const done = (this.o.done ?? 0) + this.finished;
    const elapsed = (performance.now() - this.start) / 1000;
    const perSample = this.finished ? elapsed / this.finished : Number.NaN;
    const left = this.o.total - done;
    const width = 20;
    const filled = this.o.total ? Math.round((width * done) / this.o.total) : width;
    return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${this.o.total} samples${this.stepText ? ` | ${this.stepText}` : ''}` +
      ` | ${Number.isNaN(perSample) ? '-' : perSample.toFixed(1)} s/sample | ETA ${clock(perSample * left)}`;
  }

  step(sample: number, stage: string, stepIndex: number, totalSteps: number): void {
    this.stepText = `sample ${sample} ${stage} step ${stepIndex + 1}/${totalSteps}`;
    if (this.lines) return;
    const now = performance.now();
    if (now - this.lastDraw < 100) return;
    this.lastDraw = now;
    this.stream.write(`\r${this.text()}\x1b[K`);
  }

  sample(message?: string): void {
    this.finished++;
    this.stepText = '';
    if (this.lines) this.stream.write(`${this.text()}${message ? ` | ${message}` : ''}\n`);
    else this.stream.write(`\r${this.text()}\x1b[K${message ? `\n${message}\n` : ''}`);
  }

  /** A message that must not be overwritten by the bar. */
  note(message: string): void {
    this.stream.write(this.lines ? `${message}\n` : `\r\x1b[K${message}\n`);
  }

  end(): void {
    if (!this.lines) this.stream.write('\n');
  }
}
