"""Figures for the analysis page, one module per kind.

theme: colours, layouts and shared helpers; files: the result files figures read; paper: the
paper's figures and ablations; performance: benchmark and serving figures; runs: a training run's
curves; tables: benchmark tables and heat-tables. Every builder returns a plain-JSON Plotly spec.
"""


from .theme import FT_COLOR, LIN_COLOR, MOCO_COLOR, REF_COLOR, OURS_COLOR, OURS_COLOR_2, DEFAULT_FILL, FONT, Spec, BATCH_COLORS, PEER_COLOR, LATENCY_NAMES, IN_PROCESS_PATHS, short_model, machine_name, machine_facts
from .files import BenchRow, BenchTrain, AblationFactor, ABLATION_FACTORS, AblationRow, AblationResult, BenchInferRow, BenchInfer, BenchPeerRow, BenchPeer, LatencyStat, ThroughputRow, SERVE_META_KEYS, ServeLatency
from .paper import TABLE1_LABELS, table1_figure, scratch_vs_mae_figure, figure5, figure7, figure9, table2_figure, ABLATION_PAPER, ABLATION_TITLES, ablation_figure, paper_figures
from .performance import bench_figure, infer_figure, peer_figure, latency_figure, throughput_figure
from .tables import infer_table, peer_table, latency_table, throughput_table, HEAT_RGB, heat_table
from .runs import RUN_FIELDS, run_figures

__all__ = ['ABLATION_FACTORS', 'ABLATION_PAPER', 'ABLATION_TITLES', 'AblationFactor', 'AblationResult', 'AblationRow', 'BATCH_COLORS', 'BenchInfer', 'BenchInferRow', 'BenchPeer', 'BenchPeerRow', 'BenchRow', 'BenchTrain', 'DEFAULT_FILL', 'FONT', 'FT_COLOR', 'HEAT_RGB', 'IN_PROCESS_PATHS', 'LATENCY_NAMES', 'LIN_COLOR', 'LatencyStat', 'MOCO_COLOR', 'OURS_COLOR', 'OURS_COLOR_2', 'PEER_COLOR', 'REF_COLOR', 'RUN_FIELDS', 'SERVE_META_KEYS', 'ServeLatency', 'Spec', 'TABLE1_LABELS', 'ThroughputRow', 'ablation_figure', 'bench_figure', 'figure5', 'figure7', 'figure9', 'heat_table', 'infer_figure', 'infer_table', 'latency_figure', 'latency_table', 'machine_facts', 'machine_name', 'paper_figures', 'peer_figure', 'peer_table', 'run_figures', 'scratch_vs_mae_figure', 'short_model', 'table1_figure', 'table2_figure', 'throughput_figure', 'throughput_table']
