from downlink.cli import main

raise SystemExit(main())
