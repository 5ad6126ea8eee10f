// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @dev The slice of Registry that Research reads.
interface IResearchRegistry {
    function isAdmin(address account) external view returns (bool);
    function isPatient(address account) external view returns (bool);
    function isResearcher(address account) external view returns (bool);
}

/// @title medledger research: studies, patients' opt-ins, and the exports made for them.
/// @notice A study is registered by an admin for one researcher, with the hash of its details
///         (title, description, the data it asks for: kept off chain, since a study's subject
///         joined to a patient's address would say something about their health) and an end.
///         A patient opts in and can withdraw, by their own transactions. An export is recorded
///         by the study's researcher with the hash of its files, and only if every patient it
///         includes has a live opt-in at that moment: the contract, not the server, decides who
///         may be in it. Each included patient gets an event their access log shows.
contract Research {
    struct Study {
        uint64 id;
        address researcher;
        bytes32 detailsHash;
        uint64 endsAt;
        uint64 registeredAt;
    }

    error NotAdmin(address caller);
    error NotPatient(address account);
    error NotResearcher(address account);
    error UnknownStudy(uint64 id);
    error StudyEnded(uint64 id, uint64 endsAt);
    error EndInPast(uint64 endsAt);
    error AlreadyOptedIn(address patient, uint64 studyId);
    error NotOptedIn(address patient, uint64 studyId);
    error NotStudyResearcher(address caller, uint64 studyId);
    error EmptyExport();

    event StudyRegistered(uint64 indexed id, address indexed researcher, bytes32 detailsHash, uint64 endsAt);
    event OptedIn(address indexed patient, uint64 indexed studyId);
    event Withdrew(address indexed patient, uint64 indexed studyId);
    event ExportRecorded(uint64 indexed exportId, uint64 indexed studyId, bytes32 filesHash, uint32 resources, uint32 patients);
    event IncludedInExport(address indexed patient, uint64 indexed studyId, uint64 indexed exportId);

    IResearchRegistry public immutable registry;
    mapping(uint64 => Study) private _studies;
    mapping(address => mapping(uint64 => bool)) private _optedIn;
    uint64 private _studyCount;
    uint64 private _exportCount;

    constructor(address registry_) {
        registry = IResearchRegistry(registry_);
    }

    /// @notice An admin registers a study for `researcher`, running until `endsAt`.
    function registerStudy(address researcher, bytes32 detailsHash, uint64 endsAt)
        external
        returns (uint64 id)
    {
        if (!registry.isAdmin(msg.sender)) revert NotAdmin(msg.sender);
        if (!registry.isResearcher(researcher)) revert NotResearcher(researcher);
        if (endsAt <= block.timestamp) revert EndInPast(endsAt);
        id = ++_studyCount;
        _studies[id] = Study(id, researcher, detailsHash, endsAt, uint64(block.timestamp));
        emit StudyRegistered(id, researcher, detailsHash, endsAt);
    }

    /// @notice The caller, a patient, joins a running study.
    function optIn(uint64 studyId) external {
        if (!registry.isPatient(msg.sender)) revert NotPatient(msg.sender);
        Study storage s = _running(studyId);
        if (_optedIn[msg.sender][s.id]) revert AlreadyOptedIn(msg.sender, studyId);
        _optedIn[msg.sender][studyId] = true;
        emit OptedIn(msg.sender, studyId);
    }

    /// @notice The caller leaves a study (also after it ended).
    function withdraw(uint64 studyId) external {
        _study(studyId);
        if (!_optedIn[msg.sender][studyId]) revert NotOptedIn(msg.sender, studyId);
        _optedIn[msg.sender][studyId] = false;
        emit Withdrew(msg.sender, studyId);
    }

    /// @notice Whether `patient`'s opt-in to `studyId` is live: given, not withdrawn, and the
    ///         study still running.
    function isOptedIn(address patient, uint64 studyId) public view returns (bool) {
        Study storage s = _studies[studyId];
        return s.id != 0 && s.endsAt > block.timestamp && _optedIn[patient][studyId];
    }

    /// @notice The study's researcher records an export of `resources` de-identified resources
    ///         (the hash of its files) drawn from `patients`, each of whom must have a live
    ///         opt-in now.
    function recordExport(uint64 studyId, bytes32 filesHash, uint32 resources, address[] calldata patients)
        external
        returns (uint64 exportId)
    {
        Study storage s = _running(studyId);
        if (msg.sender != s.researcher) revert NotStudyResearcher(msg.sender, studyId);
        if (patients.length == 0) revert EmptyExport();
        for (uint256 i = 0; i < patients.length; i++) {
            if (!_optedIn[patients[i]][studyId]) revert NotOptedIn(patients[i], studyId);
        }
        exportId = ++_exportCount;
        emit ExportRecorded(exportId, studyId, filesHash, resources, uint32(patients.length));
        for (uint256 i = 0; i < patients.length; i++) {
            emit IncludedInExport(patients[i], studyId, exportId);
        }
    }

    function getStudy(uint64 id) external view returns (Study memory) {
        return _study(id);
    }

    function studyCount() external view returns (uint64) {
        return _studyCount;
    }

    function exportCount() external view returns (uint64) {
        return _exportCount;
    }

    function _study(uint64 id) private view returns (Study storage s) {
        s = _studies[id];
        if (s.id == 0) revert UnknownStudy(id);
    }

    function _running(uint64 id) private view returns (Study storage s) {
        s = _study(id);
        if (s.endsAt <= block.timestamp) revert StudyEnded(id, s.endsAt);
    }
}
