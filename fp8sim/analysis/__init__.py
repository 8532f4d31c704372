"""Analysis: error statistics, plots, studies, the oracle and black-box identification."""
