// Embeds the compiled sockops program (USMC_BPF_OBJECT, built by clang
// -target bpf) in the binary, so `usmc bpf install` needs no file at run time.
#ifndef USMC_BPF_OBJECT
#error "USMC_BPF_OBJECT must name the BPF object file"
#endif

asm(".section .rodata.usmc_sockops, \"a\"\n"
    ".balign 8\n"
    ".globl usmc_sockops_obj\n"
    ".hidden usmc_sockops_obj\n"
    "usmc_sockops_obj:\n"
    ".incbin \"" USMC_BPF_OBJECT
    "\"\n"
    ".globl usmc_sockops_obj_end\n"
    ".hidden usmc_sockops_obj_end\n"
    "usmc_sockops_obj_end:\n"
    ".previous\n");
