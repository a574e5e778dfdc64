"""Metric sinks: JSONL, TensorBoard, GIF videos and the outputs registry (the
Terminal sink is tested in test_terminal.py)."""

import io
import json
import math
import pathlib
import subprocess
import sys

import gin
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from PIL import ImageSequence

from dreamkit import outputs
from dreamkit.outputs import jsonl as jsonl_lib
from dreamkit.outputs import video as video_lib

ROW = {
    'train_return': 12.5, 'train_length': 180, 'model_loss': np.float32(3.25),
    'kl_loss': np.float64(1.5), 'actor_ent': np.float16(0.5), 'fps': 81.0,
    'frames': 4000, 'updates': np.int64(20), 'steps_budget': 50000}


def distinct_frames(count, height=8, width=12, channels=3):
  """uint8 [T, H, W, C] frames that differ from each other (GIFs merge repeats)."""
  frames = np.zeros((count, height, width, channels), np.uint8)
  for index in range(count):
    frames[index, :, : index + 1] = 40 + 20 * index
    frames[index, index % height] = 255
  return frames


# ------------------------------------------------------------------------- JSONL


def test_jsonl_rows_round_trip_through_pandas(tmp_path):
  output = outputs.JSONL(tmp_path)
  output.write(1000, ROW)
  output.write(2000, {'eval_return': np.float32(7.0), 'eval_length': np.int32(90)})
  output.close()
  frame = pd.read_json(tmp_path / 'metrics.jsonl', lines=True)
  assert list(frame['step']) == [1000, 2000]
  assert frame['train_return'][0] == 12.5
  assert frame['model_loss'][0] == 3.25
  assert frame['actor_ent'][0] == 0.5
  assert frame['updates'][0] == 20
  assert frame['eval_return'][1] == 7.0
  assert math.isnan(frame['train_return'][1])  # Keys missing from a row are NaN.
  assert math.isnan(frame['eval_return'][0])


def test_jsonl_converts_numpy_scalars_and_skips_arrays(tmp_path):
  output = outputs.JSONL(tmp_path)
  output.write(np.int64(5), {
      'int': np.int64(3), 'float': np.float32(0.25), 'bool': np.bool_(True),
      'zero_d': np.array(2.5), 'vector': np.zeros(3), 'image': np.zeros((2, 2))})
  output.close()
  row = json.loads((tmp_path / 'metrics.jsonl').read_text())
  assert row == {'step': 5, 'int': 3, 'float': 0.25, 'bool': True, 'zero_d': 2.5}
  assert isinstance(row['int'], int) and isinstance(row['step'], int)


def test_jsonl_nan_is_null_and_infinity_survives(tmp_path):
  output = outputs.JSONL(tmp_path)
  output.write(1, {'a': float('nan'), 'b': np.float32('inf'), 'c': -math.inf})
  output.write(2, {'a': 1.0, 'b': 2.0, 'c': 3.0})
  output.close()
  text = (tmp_path / 'metrics.jsonl').read_text()
  first = text.splitlines()[0]
  # Standard JSON: no NaN / Infinity tokens, which strict parsers reject.
  assert 'NaN' not in text and 'Infinity' not in text
  strict = json.loads(first, parse_constant=lambda token: pytest.fail(token))
  assert strict['a'] is None and strict['b'] == math.inf and strict['c'] == -math.inf
  frame = pd.read_json(tmp_path / 'metrics.jsonl', lines=True)
  assert math.isnan(frame['a'][0]) and frame['a'][1] == 1.0
  assert frame['b'][0] == math.inf and frame['c'][0] == -math.inf


def test_jsonl_repairs_a_torn_last_line_and_appends(tmp_path, caplog):
  path = tmp_path / 'metrics.jsonl'
  output = outputs.JSONL(tmp_path)
  output.write(1, {'a': 1.0})
  output.write(2, {'a': 2.0})
  output.close()
  with open(path, 'ab') as file:
    file.write(b'{"step": 3, "a": 3.')  # A run killed in the middle of a write.
  with caplog.at_level('WARNING'):
    output = outputs.JSONL(tmp_path)
  assert 'partial last line' in caplog.text
  output.write(3, {'a': 3.5})
  output.close()
  frame = pd.read_json(path, lines=True)
  assert list(frame['step']) == [1, 2, 3]
  assert list(frame['a']) == [1.0, 2.0, 3.5]


def test_jsonl_repair_keeps_a_complete_row_missing_its_newline(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  path.write_bytes(b'{"step": 1, "a": 1}\n{"step": 2, "a": 2}')
  output = outputs.JSONL(tmp_path)
  output.write(3, {'a': 3})
  output.close()
  assert list(pd.read_json(path, lines=True)['step']) == [1, 2, 3]


def test_jsonl_repair_of_a_single_torn_line_and_of_long_files(tmp_path):
  path = tmp_path / 'only.jsonl'
  path.write_bytes(b'{"step": 1, "a"')
  assert jsonl_lib.repair_torn_tail(path) == len(b'{"step": 1, "a"')
  assert path.read_bytes() == b''
  # The newline search crosses the 64 KiB block boundary.
  long_line = json.dumps({'step': 1, 'text': 'x' * 200000}).encode() + b'\n'
  path.write_bytes(long_line + b'{"step": 2, ' + b'y' * 100000)
  jsonl_lib.repair_torn_tail(path)
  assert path.read_bytes() == long_line


def test_jsonl_lines_are_single_writes(tmp_path, monkeypatch):
  output = outputs.JSONL(tmp_path)
  calls = []
  original = output._file.write
  monkeypatch.setattr(
      output._file, 'write', lambda data: calls.append(bytes(data)) or original(data),
      raising=False)
  output.write(7, {'a': 1.0, 'b': 2.0})
  output.flush()
  assert len(calls) == 1 and calls[0].endswith(b'\n') and calls[0].count(b'\n') == 1
  # Durable after flush: another reader sees the full row.
  assert json.loads((tmp_path / 'metrics.jsonl').read_text()) == {
      'step': 7, 'a': 1.0, 'b': 2.0}
  output.close()


def test_jsonl_rejects_a_step_key(tmp_path):
  output = outputs.JSONL(tmp_path)
  with pytest.raises(ValueError, match="'step'"):
    output.write(1, {'step': 2})
  output.close()


# ------------------------------------------------------------------------ Videos


@pytest.mark.parametrize('channels', [1, 3])
def test_encode_gif_has_every_frame(channels):
  frames = distinct_frames(6, channels=channels)
  data = outputs.encode_gif(frames, fps=20)
  assert data[:6] in (b'GIF87a', b'GIF89a')
  image = Image.open(io.BytesIO(data))
  assert image.n_frames == 6 and image.size == (12, 8)
  assert [frame.info['duration'] for frame in ImageSequence.Iterator(image)] == [50] * 6
  for index, frame in enumerate(ImageSequence.Iterator(image)):
    decoded = np.asarray(frame.convert('RGB' if channels == 3 else 'L'))
    expected = frames[index] if channels == 3 else frames[index, ..., 0]
    # Few colours per frame: quantization to a 256-colour palette is exact.
    np.testing.assert_array_equal(decoded, expected)


def test_encode_gif_keeps_playback_time_when_frames_repeat():
  frames = np.zeros((5, 4, 4, 3), np.uint8)
  image = Image.open(io.BytesIO(outputs.encode_gif(frames, fps=10)))
  durations = [frame.info['duration'] for frame in ImageSequence.Iterator(image)]
  assert sum(durations) == 500


def test_encode_gif_accepts_float_frames_and_rejects_bad_shapes():
  floats = distinct_frames(3).astype(np.float32) / 255
  image = Image.open(io.BytesIO(outputs.encode_gif(floats)))
  assert image.n_frames == 3
  with pytest.raises(ValueError, match=r'\[T, H, W, C\]'):
    outputs.encode_gif(np.zeros((3, 8, 8, 4), np.uint8))
  with pytest.raises(ValueError, match='uint8'):
    outputs.encode_gif(np.zeros((3, 8, 8, 3), np.int32))


def test_a_batch_of_videos_is_tiled_side_by_side():
  batch = np.stack([distinct_frames(4), 255 - distinct_frames(4)])  # [B, T, H, W, C]
  video = video_lib.as_video(batch)
  assert video.shape == (4, 8, 24, 3)
  np.testing.assert_array_equal(video[2, :, :12], batch[0, 2])
  np.testing.assert_array_equal(video[2, :, 12:], batch[1, 2])


def test_frames_grid_tiles_in_order():
  frames = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones(
      (5, 2, 3, 1), np.uint8)
  grid = video_lib.frames_grid(frames, columns=2)
  assert grid.shape == (6, 6, 1)
  assert grid[0, 0, 0] == 0 and grid[0, 3, 0] == 1 and grid[2, 0, 0] == 2
  assert grid[4, 0, 0] == 4 and grid[4, 3, 0] == 0  # Padding.


def test_video_files_writes_gifs_atomically(tmp_path):
  output = outputs.VideoFiles(tmp_path, fps=10)
  output.write(100, {'a': 1.0})
  output.video(100, 'eval/policy', distinct_frames(4))
  output.close()
  files = sorted(path.name for path in (tmp_path / 'videos').iterdir())
  assert files == ['eval_policy_000000100.gif']
  assert Image.open(tmp_path / 'videos' / files[0]).n_frames == 4


# ------------------------------------------------------------------- TensorBoard


def read_events(logdir):
  """{tag: [(step, value)]} from the event files in logdir."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  events = {}
  for path in sorted(pathlib.Path(logdir).glob('events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        events.setdefault(value.tag, []).append((event.step, value))
  return events


def tensor_value(value):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf.make_ndarray(value.tensor)


def test_tensorboard_scalars_video_and_text(tmp_path):
  output = outputs.TensorBoard(tmp_path, fps=10)
  output.write(1000, {'train_return': 12.5, 'model_loss': np.float32(3.25),
                      'updates': np.int64(20), 'vector': np.zeros(3)})
  output.write(2000, {'train_return': 14.0})
  output.video(2000, 'openl_image', distinct_frames(5))
  output.text('config', 'Pipeline.steps = 100\n# a comment')
  output.close()
  events = read_events(tmp_path)
  returns = [(step, float(tensor_value(value))) for step, value in
             events['scalars/train_return']]
  assert returns == [(1000, 12.5), (2000, 14.0)]
  assert float(tensor_value(events['scalars/model_loss'][0][1])) == 3.25
  assert float(tensor_value(events['scalars/updates'][0][1])) == 20.0
  assert 'scalars/vector' not in events
  ((step, video),) = events['openl_image']
  assert step == 2000
  assert (video.image.height, video.image.width, video.image.colorspace) == (8, 12, 3)
  gif = Image.open(io.BytesIO(video.image.encoded_image_string))
  assert gif.format == 'GIF' and gif.n_frames == 5
  ((_, text),) = events['config']
  assert text.metadata.plugin_data.plugin_name == 'text'
  body = tensor_value(text).item().decode()
  assert 'Pipeline.steps = 100' in body and '# a comment' in body
  assert events['scalars/train_return'][0][1].metadata.plugin_data.plugin_name == \
      'scalars'


def test_tensorboard_falls_back_to_a_still_image(tmp_path, monkeypatch):
  def broken(frames, fps):
    raise OSError('no encoder')
  monkeypatch.setattr(video_lib, 'encode_gif', broken)
  output = outputs.TensorBoard(tmp_path)
  output.video(5, 'policy', distinct_frames(3, channels=1))
  output.close()
  ((step, value),) = read_events(tmp_path)['policy']
  assert step == 5
  assert (value.image.width, value.image.height) == (36, 8)
  still = Image.open(io.BytesIO(value.image.encoded_image_string))
  assert still.format == 'PNG' and still.size == (36, 8)


# ---------------------------------------------------------------------- Registry


@pytest.mark.parametrize('name', outputs.registry.names())
def test_every_registered_output_writes_and_closes(name, tmp_path):
  output = outputs.registry.get(name)(str(tmp_path))
  output.write(10, dict(ROW))
  output.video(10, 'policy', distinct_frames(3))
  output.text('config', 'a = 1')
  output.flush()
  output.close()


def test_registry_lists_the_builtins():
  assert set(outputs.registry.names()) >= {
      'JSONL', 'TensorBoard', 'Terminal', 'VideoFiles'}


def test_outputs_are_gin_factories_called_with_the_logdir(tmp_path):
  gin.parse_config("""
      outputs.JSONL.filename = 'scores.jsonl'
      outputs.Terminal.interval = 5.0
  """)
  jsonl = outputs.registry.configured('JSONL')(tmp_path)
  jsonl.write(1, {'a': 1})
  jsonl.close()
  assert (tmp_path / 'scores.jsonl').exists()
  assert outputs.registry.configured('Terminal')(tmp_path)._interval == 5.0


def test_importing_outputs_does_not_import_tensorflow():
  code = ('import sys, dreamkit.outputs; '
          "assert 'tensorflow' not in sys.modules; "
          "assert 'matplotlib' not in sys.modules; "
          "assert 'PIL' not in sys.modules")
  subprocess.run([sys.executable, '-c', code], check=True)
