"""Statistics of stored predictions: intervals per value and tests of differences (docs/statistics.md).

delong (I-AUROC variance), bootstrap (exact stratified image bootstrap of the pixel metrics),
seeds (t interval over seeds), paired (paired bootstrap, Wilcoxon, Friedman and Holm),
intervals (a run folder's intervals and paired differences), cd (the critical-difference figure),
compare (the `compare` command). Reads the store; never trains, never imports torch.
"""
