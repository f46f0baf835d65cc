"""MultiWorkerMirroredStrategy through TF_CONFIG: two worker processes on localhost ports."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import tensorflow as tf

from helpers import ROOT, checkpoint_values, run_py, tiny_args


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_equal_one_worker_on_the_same_global_batch(tmp_path, npy_path):
    params = ["train.num_steps = 3", "train.batch_size = 4", "train.export_at_end = False"]
    single = tmp_path / "single"
    result = run_py(*tiny_args(single, npy_path, *params))
    assert result.returncode == 0, result.stderr[-3000:]

    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    model_dir = tmp_path / "multi"
    workers = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        args = tiny_args(model_dir, npy_path, *params,
                         "train.strategy = @multi_worker_mirrored_strategy()")
        workers.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "run.py"), *args],
                                        cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (_, err) in zip(workers, outputs):
        assert w.returncode == 0, err[-3000:]

    # The chief writes model_dir; worker 1 keeps its own copy of every checkpoint.
    chief = checkpoint_values(model_dir)
    reader = tf.train.load_checkpoint(str(model_dir / "checkpoints" / "worker_1"))
    worker_1 = {name: reader.get_tensor(name) for name in chief}
    want = checkpoint_values(single)
    assert chief.keys() == worker_1.keys() == want.keys() and len(want) > 50
    assert os.path.exists(model_dir / "samples.png")
    assert not os.path.exists(model_dir / "checkpoints" / "worker_1" / "samples.png")
    for name in want:
        np.testing.assert_array_equal(chief[name], worker_1[name], err_msg=name)
        np.testing.assert_allclose(chief[name], want[name], atol=1e-5, err_msg=name)


def test_distribute_pipeline_gives_each_replica_its_contiguous_rows_with_static_shapes():
    from helpers import two_cpu_strategy
    from tf_convgan.training.distributed import distribute_pipeline
    strategy = two_cpu_strategy()
    real = np.arange(3 * 8 * 2, dtype=np.float32).reshape(3 * 8, 2, 1)  # 3 global batches of 8
    labels = np.arange(3 * 8 * 2, dtype=np.int32).reshape(3 * 8, 2)
    make = lambda: tf.data.Dataset.from_tensor_slices((real, labels)).batch(  # noqa: E731
        8, drop_remainder=True)
    iterator = iter(distribute_pipeline(strategy, make))
    for b in range(3):
        per_replica_real, per_replica_labels = next(iterator)
        for r, (x, y) in enumerate(zip(strategy.experimental_local_results(per_replica_real),
                                       strategy.experimental_local_results(per_replica_labels))):
            rows = slice(8 * b + 4 * r, 8 * b + 4 * r + 4)
            np.testing.assert_array_equal(x.numpy(), real[rows])
            np.testing.assert_array_equal(y.numpy(), labels[rows])
            assert x.shape == (4, 2, 1)
