-- The trading side's model evaluation (finance_demo/platform/evaluation.py): every two minutes
-- each model's accuracy over its signals closed in the last 30 minutes becomes a new
-- model_evaluations row, the newest of which finance_prediction_accuracy_ratio reads. The
-- platform role may add evaluations, never change or remove one (no UPDATE, no DELETE), and
-- the window is read through an index, not a scan of the whole signal history.
CREATE INDEX IF NOT EXISTS signals_closed_at ON signals (closed_at) WHERE closed_at IS NOT NULL;
GRANT SELECT, INSERT ON model_evaluations TO finance_platform;
GRANT USAGE ON SEQUENCE model_evaluations_id_seq TO finance_platform;
