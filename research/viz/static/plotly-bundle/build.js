// node build.js OUTFILE: the bundle of entry.js, minified, as plotly.js's own build makes it
// (esbuild, IIFE exposing window.Plotly, CSS inlined), with a banner naming version and traces.
'use strict';
const fs = require('fs');
const esbuild = require('esbuild');
const { environmentPlugin } = require('esbuild-plugin-environment');
const InlineCSSPlugin = require('esbuild-plugin-inline-css');

const version = require('plotly.js/package.json').version;
const traces = ['scatter', ...[...fs.readFileSync(__dirname + '/entry.js', 'utf8')
    .matchAll(/require\('plotly\.js\/lib\/(\w+)'\)/g)].map((m) => m[1]).filter((t) => t !== 'core')];

esbuild.build({
    entryPoints: [__dirname + '/entry.js'],
    outfile: process.argv[2],
    format: 'iife',
    globalName: 'Plotly',
    bundle: true,
    minify: true,
    legalComments: 'eof',
    banner: { js: `/* plotly.js (workbench partial bundle: ${traces.join(', ')}) v${version} | MIT licence */` },
    plugins: [InlineCSSPlugin(), environmentPlugin({ NODE_DEBUG: false })],
    alias: { regl: '@plotly/regl', stream: 'stream-browserify' },
    define: { global: 'window', 'define.amd': 'false' },
    target: 'es2016',
    logLevel: 'warning',
}).catch(() => process.exit(1));
