"""The run directory (`model_dir`): its layout and everything that reads or writes it.

    layout      the names of every file and subdirectory; what an export may replace
    files       every file operation on a run directory, local or a URL (gs://, ram://: through
                tf.io.gfile); crash-safe writes (locally: unpredictable temporary names that
                never follow a symbolic link, fsync, atomic rename), metrics.csv rows, whole
                directories
    disk_full   a full disk (ENOSPC, or TensorFlow's "No space left on device") recognised;
                DiskFullError names the file that could not be written
    outputs     what a command may write where the user pointed it: never in a run's
                checkpoints, never over a file or into a directory that is not its own
    lock        one writer per run directory (flock, released when the process ends; none on
                a URL); a writable directory checked before anything runs
    run_config  the operative config read as data: a restricted reader that imports and calls
                nothing, and builds the networks without gin's global state
    generators  the EMA generator of a run directory or a SavedModel (sampling, export,
                evaluate); the trained players (G, D, step) of a checkpoint
    objective   the GAN's objective (loss, penalty, instance noise, consistency terms) rebuilt
                from the operative config as data, or refused naming the term

The first four need only the standard library and are imported here; `run_config`,
`generators` and `objective` build networks, restore checkpoints or call objective functions
(`from tf_convgan.run_dir import generators`). Imports flow one way: checkpoints.py uses files
and layout; generators uses checkpoints; objective uses run_config; nothing here imports the
trainer.

A program that writes a run directory (an importer, say) does

    with run_dir.writer_lock(model_dir):
        ...write checkpoints with checkpoints.CheckpointKeeper...
        run_dir.write_text(run_dir.operative_config_path(model_dir), operative_config_text)
"""
from tf_convgan.run_dir import disk_full, files  # noqa: F401
from tf_convgan.run_dir.files import (append_csv_row, atomic_file, fsync_directory,  # noqa: F401
                                      file_sha256, is_url, read_bytes, read_text,
                                      replace_directory, temporary_directory, write_bytes,
                                      write_text)
from tf_convgan.run_dir.layout import (BEST_JSON, BEST_SUBDIR, CHECKPOINT_STATE,  # noqa: F401
                                       CHECKPOINT_SUBDIR, EXPORT_SUBDIR, FID_PLOT, LOCK_FILE,
                                       METRICS_CSV, OPERATIVE_CONFIG, SAMPLES_PNG,
                                       SAMPLES_SUBDIR, UNREADABLE_SUBDIR, best_dir,
                                       check_export_dir, check_training_dir, checkpoint_area,
                                       checkpoint_dir, export_dir, is_inside,
                                       is_run_directory, operative_config_path,
                                       sample_grid_paths)
from tf_convgan.run_dir import outputs  # noqa: F401
from tf_convgan.run_dir.lock import (RunDirectoryBusyError, check_writable,  # noqa: F401
                                     writer_lock)
