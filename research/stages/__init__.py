"""The market pipelines' own stages: what ``pipelines/daily.yaml`` and ``hourly.yaml`` compute.

The stage notebooks call these functions; each reads earlier outputs, calls the library
(data, features, models, strategies, backtest, risk, paper) and writes its outputs through
:mod:`research.workflow.results`. The pipeline engine (:mod:`research.workflow`) knows nothing
of them.

=====================  ==================================================================
module                 what
=====================  ==================================================================
``steps``              the daily and hourly stage functions the notebooks call
``as_of``              the ``as_of`` hook: a run's as-of date from its data
``todays_signals``     today's signals, target positions; market alerts (rules in research.alerts)
``sweep_outputs``      the moving-average sweep's outputs and overfitting figures
``modeling``           retrain on schedule or forecast with the deployed model
``paper_accounts``     the paper stage: step the pipeline's paper accounts
=====================  ==================================================================
"""
