"""Shared fixtures: every test starts from a clean gin config and float32 policy."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('MUJOCO_GL', 'egl')

import gin
import pytest


@pytest.fixture(autouse=True)
def clean_global_state():
  """Clear gin bindings, reset the Keras precision policy and seed the RNGs around every test."""
  gin.clear_config()
  _reset_policy()
  _seed()
  yield
  gin.clear_config()
  _reset_policy()


def _reset_policy():
  import sys
  if 'keras' in sys.modules:
    import keras
    keras.mixed_precision.set_global_policy('float32')


def _seed():
  """Seed Python, NumPy and TensorFlow so a test draws the same numbers on every run."""
  import sys
  if 'keras' in sys.modules:
    import keras
    keras.utils.set_random_seed(0)


@pytest.fixture(scope='session')
def trained_run(tmp_path_factory):
  """A tiny trained plugin run, trained once per session (tests/trained_run.py)."""
  import trained_run as helper  # pylint: disable=import-outside-toplevel
  return helper.train(tmp_path_factory.mktemp('trained'))
