package report

import _ "embed"

// echartsJS is Apache ECharts' minified browser build, inlined into every
// HTML report so that the page needs no network; assets/README.md says
// where it came from.
//
//go:embed assets/echarts.min.js
var echartsJS string

// echartsVersion is the version of the embedded ECharts.
const echartsVersion = "5.6.0"
