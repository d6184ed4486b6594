# Read by hls4ml's report parser (hls4ml.report.parse_vivado_report) to find this project.
variable project_name
set project_name "${top}"
variable backend
set backend "${backend}"
