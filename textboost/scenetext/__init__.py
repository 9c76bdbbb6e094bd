"""Scene-text ground truth (ICDAR-style files, plate sets) and the ICDAR 2015 matching of
detections against it: what evaluation, training and the simulator's reports share.
Below all three; imports nothing of them."""
