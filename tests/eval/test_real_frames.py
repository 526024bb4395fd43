import numpy as np

from avatarlm.eval.real_frames import real_pan_clip, real_portraits


def test_real_photos_are_framed_and_sized():
    photos = real_portraits(64, 48)
    assert set(photos) == {"astronaut", "chelsea"}
    for image in photos.values():
        assert image.shape == (64, 48, 3) and image.dtype == np.uint8 and image.std() > 20
    clip = real_pan_clip(32, 32, frames=5)
    assert clip.shape == (5, 32, 32, 3)
    assert np.abs(np.diff(clip.astype(int), axis=0)).mean() > 1  # the camera moves
