// Holds the precompiled header that every test executable reuses (see tests/CMakeLists.txt):
// an executable, so that its flags (-fPIE) match theirs.
int main() { return 0; }
