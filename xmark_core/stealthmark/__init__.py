"""StealthMark: black-box ownership of a segmentation model, revealed as a QR code.

The owner trains the model so that a keyed stamp placed in cells of a grid raises the
uncertainty ``min(p, 1 - p)`` to ``eps`` exactly in the cells where (QR code of the claim
xor a keyed mask) is dark, without changing any thresholded pixel. Verification fits a
LIME read-out of the suspect's summed uncertainty over the stamped cells; its picture,
binarised at a fixed threshold, decodes to the claim only for the marked model.

Modules: ``qr`` (claim <-> module matrix), ``trigger`` (grid and stamp), ``mark`` (the
owner's secret and record), ``model`` (U-Net with coordinate channels), ``data`` (phantom
and image+mask folders), ``metrics`` (Dice, IoU, HD95, pixel AUC), ``train`` (marked and
clean training), ``suspects`` (local, checkpoint, HTTP), ``reveal`` (LIME picture),
``verify`` (tests, detector, verdict), ``pictures`` and ``evidence`` (report bundle),
``demo`` (the app's marked and innocent demo checkpoints).

Typical use (what the CLI and the app page do)::

    from xmark_core.stealthmark.mark import load_owner_record
    from xmark_core.stealthmark.suspects import open_seg_suspect
    from xmark_core.stealthmark.verify import verify_stream, stamped_example
    from xmark_core.stealthmark.pictures import attribution_image, code_image

    owner = load_owner_record("models/seg_owner_record.json")
    suspect = open_seg_suspect("models/seg_marked.pt")   # or "http://host:port"
    for event in verify_stream(suspect, clean_images, owner.mark):     # live
        if event.state is not None:                                    # picture so far
            show(attribution_image(owner.mark.unmask_coef(event.state.coef), owner.mark.eps))
        if event.result is not None:                                   # final verdict
            result = event.result
"""
