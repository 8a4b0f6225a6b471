# Writes an assembly file that carries corral-init's binary as
# corral_init_image[] .. corral_init_image_end (process.cc). The file names
# a content hash, so that a new image changes the source and rebuilds it.
file(SHA256 "${IMAGE}" hash)
file(WRITE "${OUT}.tmp" "/* corral-init ${hash} */
  .section .rodata
  .balign 16
  .globl corral_init_image
corral_init_image:
  .incbin \"${IMAGE}\"
  .globl corral_init_image_end
corral_init_image_end:
  .section .note.GNU-stack,\"\",@progbits
")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
