export {
  type BarPlotOptions,
  type BarSeries,
  barPlot,
  escapeXml,
  formatTick,
  learningCurves,
  type LinePlotOptions,
  type LineSeries,
  linearTicks,
  linePlot,
  logTicks,
  MAX_DEFAULT_MARKERS,
  PALETTE,
} from './svg.js';
export {
  type VarianceFigureOptions,
  type VariancePoint,
  type VarianceSweep,
  varianceFigure,
} from './variance.js';
