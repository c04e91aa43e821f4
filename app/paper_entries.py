"""Which entries of the paper's results the analysis pages show, in page order.

Standard library only: ``scripts/build_paper_results.py`` reads this file before the package is
installed, and ``app.paper_results`` refuses a data file that lacks a required entry.
"""

SHOWN_RESULTS = (
    "table1a_decoder_depth",
    "table1b_decoder_width",
    "table1c_mask_token",
    "table1d_reconstruction_target",
    "table1e_data_augmentation",
    "table1f_mask_sampling",
    "baseline_vitl_scratch_vs_mae",
    "figure5_masking_ratio",
    "figure5_text_statements",
    "figure7_training_schedule",
    "figure9_partial_finetuning",
    "table2_wall_clock",
    "table3_imagenet_comparison",
    "table4_coco",
    "table5_ade20k",
    "table6_transfer_classification",
    "table7_pixels_vs_tokens",
    "table12_linear_probing_comparison",
    "table13_robustness",
)

# Kept in the data file beside Figure 5 for provenance; no chart depends on it.
OPTIONAL_RESULTS = ("figure5_text_statements",)

REQUIRED_RESULTS = tuple(name for name in SHOWN_RESULTS if name not in OPTIONAL_RESULTS)
