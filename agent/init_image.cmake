# Writes an assembly file that carries corral-init's binary as
# corral_init_image[] .. corral_init_image_end (process.cc). Run whenever
# corral-init is relinked: the rewritten file makes the image's object, and
# so corral-core, rebuild.
file(WRITE "${OUT}" "  .section .rodata
  .balign 16
  .globl corral_init_image
corral_init_image:
  .incbin \"${IMAGE}\"
  .globl corral_init_image_end
corral_init_image_end:
  .section .note.GNU-stack,\"\",@progbits
")
