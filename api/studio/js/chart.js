// Loss and eval-loss against the step, drawn with the vendored uPlot as points arrive.
import uPlot from "../../static/vendor/uplot/dist/uPlot.esm.js";

export class LossChart {
  constructor(parent) {
    this.steps = [];
    this.loss = [];
    this.evalLoss = [];
    this.plot = new uPlot(
      {
        width: Math.min(parent.clientWidth || 700, 900),
        height: 260,
        scales: { x: { time: false } },
        axes: [{ label: "step" }, { label: "loss" }],
        series: [
          { label: "step" },
          { label: "loss", stroke: "#2457c5", width: 2, points: { show: true } },
          { label: "eval loss", stroke: "#d0641c", width: 2, spanGaps: true, points: { show: true, size: 7 } },
        ],
      },
      [[], [], []],
      parent,
    );
    this.plot.root.setAttribute("role", "img");
    this.plot.root.setAttribute("aria-label", "Training loss and evaluation loss by step");
  }

  // One value of `series` ("loss" or "evalLoss") at `step`; the same step keeps one row.
  add(step, series, value) {
    let i = this.steps.indexOf(step);
    if (i < 0) {
      i = this.steps.findIndex((s) => s > step);
      if (i < 0) i = this.steps.length;
      this.steps.splice(i, 0, step);
      this.loss.splice(i, 0, null);
      this.evalLoss.splice(i, 0, null);
    }
    this[series][i] = value;
    this.plot.setData([this.steps, this.loss, this.evalLoss]);
  }

  get points() {
    return this.loss.filter((v) => v !== null).length + this.evalLoss.filter((v) => v !== null).length;
  }
}
