// The trace types the dashboards draw, and nothing else: every extra trace module costs
// start-up time on each page load (the ready-made "cartesian" bundle took twice as long to
// evaluate). research.viz.panels.layout.BUNDLED_TRACES lists the same types; a test checks both.
'use strict';

var Plotly = require('plotly.js/lib/core'); // includes scatter

Plotly.register([
    require('plotly.js/lib/bar'),
    require('plotly.js/lib/heatmap'),
    require('plotly.js/lib/histogram'),
]);

module.exports = Plotly;
