"""Shared fixtures: every test starts from a clean gin config and float32 policy."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('MUJOCO_GL', 'egl')

import gin
import pytest


@pytest.fixture(autouse=True)
def clean_global_state():
  """Clear gin bindings and reset the Keras precision policy around every test."""
  gin.clear_config()
  _reset_policy()
  yield
  gin.clear_config()
  _reset_policy()


def _reset_policy():
  import sys
  if 'keras' in sys.modules:
    import keras
    keras.mixed_precision.set_global_policy('float32')
