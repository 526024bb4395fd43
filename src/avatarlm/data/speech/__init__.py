"""Speech for the synthetic world: espeak-ng and neural voices with phoneme timings, visemes, augmentation."""
