"""Signal processing: Fourier crops, normalisation, power spectra, scores, measures, preprocessing."""
